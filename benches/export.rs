//! Export: time to the first byte of an export (goal: at most 20 ms for one hour, and about the
//! same for any length) and the throughput of reading a whole 1-hour export against a plain
//! sequential read of as many bytes of the segment files (goal: at least 80 %). The throughput
//! groups time the reads only; planning is the time to first byte, measured on its own.
//! BENCHMARKS.md, "Export", has the figures.
//!
//! Setup, not timed: a storage holding one hour of one camera recorded as the recorder records
//! it, a 1 s sync tick each holding one video chunk (25 frames of 2 KB) and one audio chunk
//! (about 47 AAC frames of 200 B). The cold groups drop the page cache before every iteration
//! (`/proc/sys/vm/drop_caches`, root only); they are skipped, with a note, when that fails.
//!
//! Issue 16: `frame_stream_1h_warm` reads the same hour as the frame stream v1 of
//! `GET /api/v1/cameras/{id}/retrieve` (`store::retrieve`, planned before the clock starts, like
//! the export) beside the export's MP4, to show what the stream's encoding costs against the
//! export's virtual MP4 (BENCHMARKS.md, "Retrieval").
//!
//! Review s30 M3 (issue 16): `export_plan_runs/360_runs_60min` is the time to first byte of a
//! 1-hour export of a camera that reconnects every 10 s (a new writer run each time, 360 runs,
//! 100 B video and 50 B audio frames: planning does not read media), the cost of combining runs.
//!
//! `cargo bench --bench export` (add `-- --quick` for a short run).

mod common;

use std::fs::File;
use std::hint::black_box;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Feed, FLUSH_TIMEOUT};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput};
use edgerec::clocks::{Clocks, SystemClocks};
use edgerec::media::{SampleEntry, StreamKind};
use edgerec::store::export::ExportPlan;
use edgerec::store::retrieve::{Align, RetrievePlan};
use edgerec::store::tier::StorageTiers;
use edgerec::store::{self, segment, writer};

/// Video: 25 fps, 2 KB frames (a small sub-stream; it keeps the hour at 180 MB of setup writes).
const VIDEO_FRAME_BYTES: usize = 2_000;
const VIDEO_FRAME_DURATION_90K: i64 = 3_600;
/// Audio: AAC-LC at 48 kHz, 1024 samples (about 21 ms) per frame, 200 B each (64 kbit/s).
const AUDIO_FRAME_BYTES: usize = 200;
const AUDIO_SAMPLE_RATE_HZ: u32 = 48_000;
const AUDIO_FRAME_SAMPLES: i64 = 1_024;
const RECORDED_SEC: i64 = 3_600;
const SEGMENT_BYTES: u64 = 64 << 20;
/// 7 x 64 MiB (with the index reserve, about 460 MiB) holds the hour without wrapping.
const SEGMENTS: u64 = 7;
/// Reads of 1 MiB, as `edgerec export` and the HTTP download do.
const READ_BYTES: usize = 1 << 20;
/// Exports shorter than the hour start 25 min 0.4 s into it: in the middle of the recording and
/// 0.4 s past a key frame, so planning has to find the key frame before the start.
const SHORT_EXPORT_OFFSET_US: i64 = 25 * 60 * 1_000_000 + 400_000;
/// Export lengths for time to first byte, in minutes.
const TTFB_MINUTES: [i64; 3] = [1, 10, 60];

/// An `mp4a` sample entry (AudioSampleEntry fields, no decoder configuration: nothing decodes it).
fn audio_entry() -> Arc<SampleEntry> {
    // 6 reserved bytes, data_reference_index, 8 reserved, channel count, sample size,
    // pre_defined and reserved, sample rate as 16.16 fixed point.
    let mut body = vec![0u8; 6];
    body.extend_from_slice(&1u16.to_be_bytes());
    body.extend_from_slice(&[0u8; 8]);
    body.extend_from_slice(&1u16.to_be_bytes());
    body.extend_from_slice(&16u16.to_be_bytes());
    body.extend_from_slice(&[0u8; 4]);
    body.extend_from_slice(&(AUDIO_SAMPLE_RATE_HZ << 16).to_be_bytes());
    Arc::new(SampleEntry::new(common::mp4_box(b"mp4a", &body), AUDIO_SAMPLE_RATE_HZ).expect("a well-formed mp4a box"))
}

/// The recorded hour: where it is and when it was.
struct Recorded {
    _dir: tempfile::TempDir,
    storage: PathBuf,
    /// Wall time (µs since the epoch) of the first recorded frame.
    start_wall_us: i64,
}

/// Records one hour through the storage writer, with wall times two hours in the past, as one run.
fn record_one_hour() -> Recorded {
    record_hour(RECORDED_SEC, VIDEO_FRAME_BYTES, AUDIO_FRAME_BYTES)
}

/// Records one hour as `record_one_hour` does, a new ingest run every `run_sec` seconds (a new
/// writer run: the camera reconnected; each starts with a key frame, one every second).
fn record_hour(run_sec: i64, video_bytes: usize, audio_bytes: usize) -> Recorded {
    let dir = common::scratch_dir("bench-export-");
    let mut cfg = common::storage_config(dir.path(), SEGMENTS, SEGMENT_BYTES);
    cfg.sync_interval = Duration::from_millis(1_000);
    let storage = cfg.path.clone();
    let recorder = store::recorder_uuid(dir.path()).expect("recorder id");
    let (handle, join, ready) = writer::spawn(cfg, dir.path().to_owned(), recorder, Arc::new(SystemClocks));
    ready.recv().expect("the writer reports its open").expect("the storage opens");
    let start_wall_us = SystemClocks.realtime_us() - 2 * 3_600_000_000;
    let mut video =
        Feed::new(StreamKind::Video, common::video_entry(), VIDEO_FRAME_DURATION_90K, video_bytes, start_wall_us);
    let mut audio = Feed::new(StreamKind::Audio, audio_entry(), AUDIO_FRAME_SAMPLES, audio_bytes, start_wall_us);
    let started = Instant::now();
    for sec in 1..=RECORDED_SEC {
        video.ingest_run = 1 + ((sec - 1) / run_sec) as u64;
        audio.ingest_run = video.ingest_run;
        // Frames in arrival order (by wall time), then the tick's flush.
        let tick_wall_us = start_wall_us + sec * 1_000_000;
        loop {
            let v = video.next_wall_us();
            let a = audio.next_wall_us();
            if v.min(a) >= tick_wall_us {
                break;
            }
            if v <= a {
                video.send(&handle);
            } else {
                audio.send(&handle);
            }
        }
        assert!(handle.flush(FLUSH_TIMEOUT), "writer flushed");
    }
    drop(handle);
    join.join().expect("writer thread");
    eprintln!(
        "export: recorded {RECORDED_SEC} s of video and audio ({} runs) in {:.1} s",
        video.ingest_run,
        started.elapsed().as_secs_f64()
    );
    Recorded { _dir: dir, storage, start_wall_us }
}

/// Plans an export and reads its first byte: what a client waits for before data flows.
fn first_byte(storage: &Path, from_us: i64, to_us: i64) -> usize {
    let plan = plan_export(storage, from_us, to_us);
    let mut buf = [0u8; 1];
    let n = plan.reader().read_at(0, &mut buf).expect("first byte");
    assert_eq!(n, 1);
    n
}

fn plan_export(storage: &Path, from_us: i64, to_us: i64) -> Arc<ExportPlan> {
    Arc::new(ExportPlan::plan(storage, "cam", from_us, to_us).expect("export plan"))
}

/// Reads a whole planned export in 1 MiB reads; returns its length. Planning is not part of it:
/// that is the time to first byte, measured on its own.
fn read_export(plan: &Arc<ExportPlan>, buf: &mut [u8]) -> u64 {
    let mut reader = plan.reader();
    let mut pos = 0u64;
    while pos < plan.len() {
        let n = reader.read_at(pos, buf).expect("export read");
        assert!(n > 0, "export ended early at {pos}");
        black_box(&buf[..n]);
        pos += n as u64;
    }
    pos
}

fn plan_retrieve(storage: &Path, from_us: i64, to_us: i64) -> Arc<RetrievePlan> {
    let tiers = vec![StorageTiers::ring_only(storage)];
    Arc::new(RetrievePlan::plan(tiers, "cam", from_us, to_us, Align::Key).expect("retrieve plan"))
}

/// Reads a whole planned frame stream as the HTTP body does (1 MiB reads); returns its length.
fn read_retrieve(plan: &Arc<RetrievePlan>, buf: &mut [u8]) -> u64 {
    let mut body = plan.body(0, plan.len());
    let mut pos = 0u64;
    loop {
        let n = body.read(buf).expect("frame stream read");
        if n == 0 {
            break;
        }
        black_box(&buf[..n]);
        pos += n as u64;
    }
    pos
}

/// Reads `total` bytes of the segment files from their start, in order, in 1 MiB reads: what
/// `cat seg-* | head -c total` does with the same media on the same disk.
fn read_segments(storage: &Path, total: u64, buf: &mut [u8]) -> u64 {
    let mut done = 0u64;
    let mut segment_no = 0;
    while done < total {
        let mut f = File::open(segment::segment_path(storage, segment_no)).expect("segment");
        loop {
            let want = (total - done).min(buf.len() as u64) as usize;
            let n = f.read(&mut buf[..want]).expect("read segment");
            if n == 0 {
                break;
            }
            black_box(&buf[..n]);
            done += n as u64;
            if done == total {
                break;
            }
        }
        segment_no += 1;
    }
    done
}

/// Writes back dirty pages and empties the page cache; false when this process may not.
fn drop_page_cache() -> bool {
    nix::unistd::sync();
    std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

fn export(c: &mut Criterion) {
    let rec = record_one_hour();
    let storage = rec.storage.as_path();
    let hour_from = rec.start_wall_us;
    let hour_to = hour_from + RECORDED_SEC * 1_000_000;
    let mid = hour_from + SHORT_EXPORT_OFFSET_US;

    let mut ttfb = c.benchmark_group("export_ttfb_warm");
    ttfb.sample_size(20);
    ttfb.warm_up_time(Duration::from_secs(1));
    ttfb.measurement_time(Duration::from_secs(4));
    for minutes in TTFB_MINUTES {
        let (from, to) = if minutes == 60 { (hour_from, hour_to) } else { (mid, mid + minutes * 60 * 1_000_000) };
        ttfb.bench_with_input(BenchmarkId::from_parameter(format!("{minutes}min")), &(from, to), |b, &(from, to)| {
            b.iter(|| first_byte(storage, from, to))
        });
    }
    ttfb.finish();

    // Review s30 M3: the hour in 360 runs (a reconnect every 10 s).
    {
        let runs = record_hour(10, 100, 50);
        let (from, to) = (runs.start_wall_us, runs.start_wall_us + RECORDED_SEC * 1_000_000);
        let plan = plan_export(&runs.storage, from, to);
        eprintln!(
            "export: 1 h in 360 runs: {} bytes, {} video + {} audio frames",
            plan.len(),
            plan.video_frames,
            plan.audio_frames
        );
        let mut g = c.benchmark_group("export_plan_runs");
        g.sampling_mode(SamplingMode::Flat);
        g.sample_size(10);
        g.warm_up_time(Duration::from_secs(1));
        g.measurement_time(Duration::from_secs(4));
        g.bench_function("360_runs_60min", |b| b.iter(|| first_byte(&runs.storage, from, to)));
        g.finish();
    }

    let hour_len = {
        let plan = plan_export(storage, hour_from, hour_to);
        eprintln!(
            "export: 1 h export is {} bytes, {} video + {} audio frames",
            plan.len(),
            plan.video_frames,
            plan.audio_frames
        );
        plan.len()
    };
    let mut buf = vec![0u8; READ_BYTES];

    // Issue 16: the frame stream of the same hour against the export's MP4, reads only, warm.
    let stream_len = {
        let plan = plan_retrieve(storage, hour_from, hour_to);
        eprintln!("export: 1 h frame stream is {} bytes, {} frames", plan.len(), plan.frames);
        plan.len()
    };
    let mut g = c.benchmark_group("frame_stream_1h_warm");
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(4));
    g.throughput(Throughput::Bytes(hour_len));
    g.bench_function("export_mp4", |b| {
        let plan = plan_export(storage, hour_from, hour_to);
        b.iter(|| assert_eq!(read_export(&plan, &mut buf), hour_len))
    });
    g.throughput(Throughput::Bytes(stream_len));
    g.bench_function("retrieve_stream", |b| {
        let plan = plan_retrieve(storage, hour_from, hour_to);
        b.iter(|| assert_eq!(read_retrieve(&plan, &mut buf), stream_len))
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("retrieve_plan", |b| b.iter(|| black_box(plan_retrieve(storage, hour_from, hour_to).len())));
    g.finish();

    let cold = drop_page_cache();
    if !cold {
        eprintln!("export: cannot drop the page cache (not root?); cold groups skipped");
    }
    let mut groups = vec![("export_read_1h_warm", false)];
    if cold {
        groups.push(("export_read_1h_cold", true));
    }
    for (name, drop_cache) in groups {
        let mut g = c.benchmark_group(name);
        g.sampling_mode(SamplingMode::Flat);
        g.sample_size(10);
        g.warm_up_time(Duration::from_secs(1));
        g.measurement_time(Duration::from_secs(if drop_cache { 10 } else { 4 }));
        g.throughput(Throughput::Bytes(hour_len));
        g.bench_function("edgerec_export", |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    if drop_cache {
                        assert!(drop_page_cache(), "page cache dropped");
                    }
                    let plan = plan_export(storage, hour_from, hour_to);
                    let start = Instant::now();
                    let n = read_export(&plan, &mut buf);
                    timed += start.elapsed();
                    assert_eq!(n, hour_len);
                }
                timed
            })
        });
        g.bench_function("plain_read_segments", |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    if drop_cache {
                        assert!(drop_page_cache(), "page cache dropped");
                    }
                    let start = Instant::now();
                    let n = read_segments(storage, hour_len, &mut buf);
                    timed += start.elapsed();
                    assert_eq!(n, hour_len);
                }
                timed
            })
        });
        g.finish();
    }

    if cold {
        let mut g = c.benchmark_group("export_ttfb_cold");
        g.sampling_mode(SamplingMode::Flat);
        g.sample_size(10);
        g.warm_up_time(Duration::from_secs(1));
        g.measurement_time(Duration::from_secs(3));
        g.bench_function("60min", |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    assert!(drop_page_cache(), "page cache dropped");
                    let start = Instant::now();
                    black_box(first_byte(storage, hour_from, hour_to));
                    timed += start.elapsed();
                }
                timed
            })
        });
        g.finish();
    }
}

criterion_group!(benches, export);
criterion_main!(benches);
