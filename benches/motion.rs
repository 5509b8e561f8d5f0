//! Motion analysis CPU per 1080p25 H.264 camera at default settings (key frames only, one analysis
//! per 500 ms slot, 25 % detection resolution), against decoding every frame (what Frigate does),
//! measured in the same run. Goal: at most 2 % of one core per camera.
//!
//! Setup, not timed: ffmpeg encodes two 4 s 1920x1080 25 fps clips with a key frame every second
//! (libx264 Main, no B-frames), from `testsrc2`:
//! - `busy`: temporal noise over the whole picture at a constant 4 Mbit/s, a camera's CBR main
//!   stream on a grainy night scene: key frames of about 160 KB, the expensive case (decoding
//!   cost grows with the bits of the frame).
//! - `clean`: no noise, quality-capped VBR (CRF 23, at most 4 Mbit/s): key frames of a few tens
//!   of KB, a camera on a quiet daytime scene.
//!
//! - `motion/keyframe_analysis_1080p/<scene>`: one analysed key frame: Annex B, openh264 decode,
//!   luma sampled every 4th pixel, comparison on the 16×16 grid, level grid encoded for storage.
//! - `motion/decode_every_frame_1080p/<scene>`: decoding all 100 frames of the clip (4 s).
//!
//! Both are timed in thread CPU time (`CLOCK_THREAD_CPUTIME_ID`), so the shares printed at the end
//! are shares of one core. `cargo bench --bench motion` (add `-- --quick` for a short run).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use edgerec::media::{Frame, SampleEntry, StreamKind, VIDEO_TIMESCALE_HZ};
use edgerec::motion::{FrameAnalyzer, H264Decoder, MotionConfig, Outcome};

const FPS: i64 = 25;
const CLIP_SEC: i64 = 4;
/// Key frame interval of the clip (frames): 1 s, what most cameras ship with.
const GOP_FRAMES: i64 = 25;

fn thread_cpu() -> Duration {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID).expect("thread CPU clock");
    Duration::new(ts.tv_sec() as u64, ts.tv_nsec() as u32)
}

/// The two scenes: name, extra video filter, rate control.
const SCENES: [(&str, &str, &[&str]); 2] = [
    ("busy", ",noise=alls=10:allf=t", &["-b:v", "4M", "-minrate", "4M", "-maxrate", "4M", "-bufsize", "4M"]),
    ("clean", "", &["-crf", "23", "-maxrate", "4M", "-bufsize", "8M"]),
];

fn make_clip(dir: &Path, scene: &str, filter: &str, rate: &[&str]) -> PathBuf {
    let out = dir.join(format!("motion-bench-1080p25-{scene}.mp4"));
    let gop = GOP_FRAMES.to_string();
    let output = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-y", "-v", "error", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size=1920x1080:rate={FPS}:duration={CLIP_SEC}{filter}"))
        .args(["-c:v", "libx264", "-preset", "veryfast", "-profile:v", "main", "-pix_fmt", "yuv420p"])
        .args(rate)
        .args(["-g", &gop, "-keyint_min", &gop, "-sc_threshold", "0", "-bf", "0"])
        .arg(&out)
        .stdin(Stdio::null())
        .output()
        .expect("ffmpeg is installed (bash .ci/install-test-peers.sh)");
    assert!(output.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&output.stderr));
    out
}

/// The video sample entry and frames of an MP4 (first video track).
fn read_video(path: &Path) -> (Arc<SampleEntry>, Vec<Frame>) {
    fn children(buf: &[u8]) -> Vec<(&[u8], &[u8])> {
        let mut out = Vec::new();
        let mut at = 0;
        while at + 8 <= buf.len() {
            let size = u32::from_be_bytes(buf[at..at + 4].try_into().unwrap()) as usize;
            assert!(size >= 8 && at + size <= buf.len(), "bad box at {at}");
            out.push((&buf[at + 4..at + 8], &buf[at + 8..at + size]));
            at += size;
        }
        out
    }
    fn child<'a>(buf: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
        children(buf).into_iter().find(|(n, _)| *n == name).map(|(_, b)| b)
    }
    let bytes = std::fs::read(path).unwrap();
    let moov = child(&bytes, b"moov").unwrap();
    let trak = child(moov, b"trak").unwrap();
    let stsd = ["mdia", "minf", "stbl", "stsd"].iter().try_fold(trak, |b, n| child(b, n.as_bytes())).unwrap();
    let entry_len = u32::from_be_bytes(stsd[8..12].try_into().unwrap()) as usize;
    let entry = Arc::new(SampleEntry::new(stsd[8..8 + entry_len].to_vec(), VIDEO_TIMESCALE_HZ).unwrap());
    let mut reader = mp4::Mp4Reader::read_header(std::io::Cursor::new(&bytes), bytes.len() as u64).unwrap();
    let track = reader.tracks().values().next().unwrap();
    let (id, timescale, count) = (track.track_id(), i64::from(track.timescale()), track.sample_count());
    let frames = (1..=count)
        .map(|n| {
            let s = reader.read_sample(id, n).unwrap().unwrap();
            Frame {
                kind: StreamKind::Video,
                media_time: s.start_time as i64 * i64::from(VIDEO_TIMESCALE_HZ) / timescale,
                key: s.is_sync,
                data: Bytes::copy_from_slice(&s.bytes),
            }
        })
        .collect();
    (entry, frames)
}

/// Thread CPU time per analysed key frame and per decoded frame of one scene, in ms.
fn bench_scene(c: &mut Criterion, dir: &Path, (scene, filter, rate): (&str, &str, &[&str])) -> (f64, f64) {
    let (entry, frames) = read_video(&make_clip(dir, scene, filter, rate));
    let keys: Vec<&Frame> = frames.iter().filter(|f| f.key).collect();
    let key_bytes: usize = keys.iter().map(|f| f.data.len()).sum();
    let all_bytes: usize = frames.iter().map(|f| f.data.len()).sum();
    eprintln!(
        "motion/{scene}: 1920x1080 {FPS} fps, {} frames, {} key frames of {} KB on average, {:.1} Mbit/s",
        frames.len(),
        keys.len(),
        key_bytes / keys.len() / 1000,
        all_bytes as f64 * 8.0 / CLIP_SEC as f64 / 1e6
    );
    let config = MotionConfig::default();
    let frame_us = 1_000_000 / FPS;

    let mut group = c.benchmark_group("motion");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(6));

    // Key frames only: consecutive key frames of the clip, each compared with the one before.
    let mut analyzer = FrameAnalyzer::new(&config);
    let mut decoder = H264Decoder::new();
    let mut wall_us = 0i64;
    let mut next = 0usize;
    let (mut key_cpu, mut key_count) = (Duration::ZERO, 0u64);
    group.bench_function(format!("keyframe_analysis_1080p/{scene}"), |b| {
        b.iter_custom(|iters| {
            let start = thread_cpu();
            for _ in 0..iters {
                wall_us += 500_000;
                let out = analyzer.push(&mut decoder, &entry, keys[next % keys.len()], wall_us, true).unwrap();
                if let Outcome::Compared(a) = &out {
                    std::hint::black_box(a.levels.encode());
                }
                next += 1;
            }
            let spent = thread_cpu() - start;
            key_cpu += spent;
            key_count += iters;
            spent
        })
    });

    // Every frame decoded in order, none analysed: the cost of the decode-everything path alone.
    let (mut all_cpu, mut all_count) = (Duration::ZERO, 0u64);
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function(format!("decode_every_frame_1080p/{scene}"), |b| {
        b.iter_custom(|iters| {
            let mut analyzer = FrameAnalyzer::new(&config);
            let mut decoder = H264Decoder::new();
            let start = thread_cpu();
            for i in 0..iters {
                for (n, f) in frames.iter().enumerate() {
                    let t = (i as i64 * frames.len() as i64 + n as i64) * frame_us;
                    std::hint::black_box(analyzer.push(&mut decoder, &entry, f, t, false).unwrap());
                }
            }
            let spent = thread_cpu() - start;
            all_cpu += spent;
            all_count += iters * frames.len() as u64;
            spent
        })
    });
    group.finish();
    (key_cpu.as_secs_f64() * 1e3 / key_count.max(1) as f64, all_cpu.as_secs_f64() * 1e3 / all_count.max(1) as f64)
}

/// Thread CPU time per analysed key frame, in ms, when two cameras whose parameter sets differ
/// (the two scenes: other rate control, so other SPS/PPS) take turns on one shared decoder, as
/// key-frames-only cameras do in the motion thread: each key frame then comes with its camera's
/// parameter sets, the worst case of sharing.
fn bench_shared_decoder(c: &mut Criterion, dir: &Path) -> f64 {
    let cameras: Vec<(Arc<SampleEntry>, Vec<Frame>)> = SCENES
        .iter()
        .map(|(scene, ..)| {
            let (entry, frames) = read_video(&dir.join(format!("motion-bench-1080p25-{scene}.mp4")));
            (entry, frames.into_iter().filter(|f| f.key).collect())
        })
        .collect();
    assert_ne!(cameras[0].0, cameras[1].0, "the scenes' sample entries must differ for this case");
    let config = MotionConfig::default();
    let mut analyzers: Vec<FrameAnalyzer> = cameras.iter().map(|_| FrameAnalyzer::new(&config)).collect();
    let mut decoder = H264Decoder::new();
    let mut group = c.benchmark_group("motion");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(6));
    let (mut cpu, mut count, mut wall_us, mut next) = (Duration::ZERO, 0u64, 0i64, 0usize);
    group.bench_function("keyframe_analysis_1080p/two_cameras_sharing_a_decoder", |b| {
        b.iter_custom(|iters| {
            let start = thread_cpu();
            for _ in 0..iters {
                let camera = next % cameras.len();
                if camera == 0 {
                    wall_us += 500_000;
                }
                let (entry, keys) = &cameras[camera];
                let key = &keys[(next / cameras.len()) % keys.len()];
                let out = analyzers[camera].push(&mut decoder, entry, key, wall_us, true).unwrap();
                if let Outcome::Compared(a) = &out {
                    std::hint::black_box(a.levels.encode());
                }
                next += 1;
            }
            let spent = thread_cpu() - start;
            cpu += spent;
            count += iters;
            spent
        })
    });
    group.finish();
    cpu.as_secs_f64() * 1e3 / count.max(1) as f64
}

fn motion(c: &mut Criterion) {
    let dir = tempfile::Builder::new().prefix("motion-bench").tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let results: Vec<_> = SCENES.iter().map(|s| (s.0, bench_scene(c, dir.path(), *s))).collect();
    let shared_ms = bench_shared_decoder(c, dir.path());
    let alone_ms = results.iter().map(|(_, (per_key_ms, _))| per_key_ms).sum::<f64>() / results.len() as f64;
    eprintln!(
        "motion/shared decoder: {shared_ms:.2} ms CPU per key frame with two cameras of different parameter sets \
         taking turns, against {alone_ms:.2} ms on average for each camera alone ({:+.0} %)",
        (shared_ms / alone_ms.max(1e-9) - 1.0) * 100.0
    );
    // Default settings analyse at most one key frame per 500 ms slot, and at most one per GOP:
    // 2/s with a GOP of 0.5 s or less, 1/s with a 1 s GOP, 0.5/s with a 2 s GOP (a common camera
    // default).
    let share = |per_ms: f64, per_sec: f64| per_ms * per_sec / 10.0;
    for (scene, (per_key_ms, per_frame_ms)) in results {
        eprintln!(
            "motion/{scene}: key frame analysis {per_key_ms:.2} ms CPU -> per camera {:.2} % of a core with a 2 s \
             GOP, {:.2} % with 1 s, {:.2} % with <= 0.5 s (2 analyses/s, the 500 ms cap)",
            share(per_key_ms, 0.5),
            share(per_key_ms, 1.0),
            share(per_key_ms, 2.0)
        );
        eprintln!(
            "motion/{scene}: decoding every frame {per_frame_ms:.2} ms CPU -> {:.1} % of a core per camera at \
             {FPS} fps (the Frigate path; {:.0}x the key-frame path with a 1 s GOP)",
            share(per_frame_ms, FPS as f64),
            (per_frame_ms * FPS as f64) / per_key_ms.max(1e-9)
        );
    }
}

criterion_group!(benches, motion);
criterion_main!(benches);
