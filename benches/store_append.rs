//! Store append throughput: the storage writer against a plain sequential write of the same bytes,
//! on the same filesystem, with the same number of fdatasyncs, in the same run. Goal: the writer
//! reaches at least 90 % of the plain write (BENCHMARKS.md, "Store append").
//!
//! Both sides are measured in steady state, the way an NVR runs for years: the storage ring and
//! the baseline file have each been written through once before timing starts, so neither pays
//! for converting preallocated (unwritten) extents, and the writer reclaims segments as it goes.
//!
//! `cargo bench --bench store_append` (add `-- --quick` for a short run).

mod common;

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Feed, FLUSH_TIMEOUT};
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use edgerec::clocks::{Clocks, SystemClocks};
use edgerec::media::StreamKind;
use edgerec::store::{self, writer, StorageHandle};

/// Payload of one synthetic video frame: 20 KB at 25 fps is 4 Mbit/s, a 1080p main stream.
const FRAME_BYTES: usize = 20_000;
/// Media time of one frame at 25 fps, in 90 kHz units.
const FRAME_DURATION_90K: i64 = 3_600;
/// Frames between two fdatasyncs: 400 x 20 KB = 8 MB, what one 1 s sync tick holds with 16
/// such cameras on the storage.
const FRAMES_PER_SYNC: usize = 400;
/// Syncs per timed iteration, so one iteration appends 32 MB of payload.
const SYNCS_PER_ITER: usize = 4;
const SEGMENT_BYTES: u64 = 64 << 20;
/// 6 x 64 MiB: the ring wraps every dozen iterations, so reclaims are part of what is timed.
const SEGMENTS: u64 = 6;

const PAYLOAD_BYTES_PER_ITER: u64 = (FRAME_BYTES * FRAMES_PER_SYNC * SYNCS_PER_ITER) as u64;

/// The edgerec side: a storage writer fed through `StorageHandle::try_send`, as ingest feeds it.
struct WriterSide {
    _dir: tempfile::TempDir,
    handle: StorageHandle,
    join: std::thread::JoinHandle<()>,
    feed: Feed,
    /// Times `try_send` found the queue full (then the benchmark flushed and sent again).
    overflows: u64,
}

impl WriterSide {
    fn open() -> WriterSide {
        let dir = common::scratch_dir("bench-store-append-");
        let cfg = common::storage_config(dir.path(), SEGMENTS, SEGMENT_BYTES);
        let recorder = store::recorder_uuid(dir.path()).expect("recorder id");
        let (handle, join, ready) = writer::spawn(cfg, dir.path().to_owned(), recorder, Arc::new(SystemClocks));
        ready.recv().expect("the writer reports its open").expect("the storage opens");
        // A day in the past: many hours of media fit before wall time reaches now.
        let base_wall_us = SystemClocks.realtime_us() - 86_400_000_000;
        let feed = Feed::new(StreamKind::Video, common::video_entry(), FRAME_DURATION_90K, FRAME_BYTES, base_wall_us);
        WriterSide { _dir: dir, handle, join, feed, overflows: 0 }
    }

    /// One sync's worth of frames, then a flush: the writer's `pwrite` and `fdatasync`.
    fn append_one_sync(&mut self) {
        for _ in 0..FRAMES_PER_SYNC {
            self.overflows += self.feed.send(&self.handle);
        }
        assert!(self.handle.flush(FLUSH_TIMEOUT), "writer flushed");
    }

    /// Appends until the ring has been written through once.
    fn fill_ring(&mut self) {
        while self.handle.stats.segments_reclaimed.load(Ordering::Relaxed) <= SEGMENTS {
            self.append_one_sync();
        }
    }

    fn close(self) {
        drop(self.handle);
        self.join.join().expect("writer thread");
    }
}

/// The baseline: a preallocated file of the ring's size, written sequentially in the same batch
/// sizes with one fdatasync per batch, wrapping around at its end like the ring does.
struct PlainSide {
    _dir: tempfile::TempDir,
    file: File,
    len_bytes: u64,
    /// The bytes of one sync: the same frame payloads the writer gets, back to back.
    batch: Vec<u8>,
    offset: u64,
    /// fdatasyncs done since the file was filled.
    syncs: u64,
}

impl PlainSide {
    fn open(feed: &Feed) -> PlainSide {
        let dir = common::scratch_dir("bench-plain-append-");
        let len_bytes = SEGMENTS * SEGMENT_BYTES;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(dir.path().join("plain.bin"))
            .expect("create the baseline file");
        nix::fcntl::fallocate(&file, nix::fcntl::FallocateFlags::empty(), 0, i64::try_from(len_bytes).expect("small"))
            .expect("preallocate the baseline file");
        let batch = (0..FRAMES_PER_SYNC as u64).flat_map(|n| feed.payload(n).iter().copied()).collect();
        PlainSide { _dir: dir, file, len_bytes, batch, offset: 0, syncs: 0 }
    }

    fn append_one_sync(&mut self) {
        if self.offset + self.batch.len() as u64 > self.len_bytes {
            self.offset = 0;
        }
        self.file.write_all_at(&self.batch, self.offset).expect("pwrite");
        nix::unistd::fdatasync(&self.file).expect("fdatasync");
        self.offset += self.batch.len() as u64;
        self.syncs += 1;
    }

    fn fill_file(&mut self) {
        let syncs = self.len_bytes.div_ceil(self.batch.len() as u64);
        for _ in 0..syncs {
            self.append_one_sync();
        }
        self.syncs = 0;
    }
}

fn store_append(c: &mut Criterion) {
    let mut edgerec_side = WriterSide::open();
    edgerec_side.fill_ring();
    let mut plain = PlainSide::open(&edgerec_side.feed);
    plain.fill_file();

    let stats = edgerec_side.handle.stats.clone();
    let fsyncs_before = stats.fsyncs.load(Ordering::Relaxed);
    let written_before = stats.bytes_written.load(Ordering::Relaxed);
    let mut payload_sent = 0u64;
    let mut syncs_asked = 0u64;

    let mut group = c.benchmark_group("store_append");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Bytes(PAYLOAD_BYTES_PER_ITER));
    group.bench_function("edgerec_writer", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                for _ in 0..SYNCS_PER_ITER {
                    edgerec_side.append_one_sync();
                }
            }
            let elapsed = start.elapsed();
            payload_sent += iters * PAYLOAD_BYTES_PER_ITER;
            syncs_asked += iters * SYNCS_PER_ITER as u64;
            elapsed
        })
    });
    group.bench_function("plain_pwrite_fdatasync", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                for _ in 0..SYNCS_PER_ITER {
                    plain.append_one_sync();
                }
            }
            start.elapsed()
        })
    });
    group.finish();

    // What the throughput figures do not show: extra fdatasyncs (a segment that fills is synced
    // before the next is started) and the bytes of chunk headers and frame tables.
    let fsyncs = stats.fsyncs.load(Ordering::Relaxed) - fsyncs_before;
    let written = stats.bytes_written.load(Ordering::Relaxed) - written_before;
    eprintln!(
        "store_append: frame {FRAME_BYTES} B, {} frames/iteration; writer: {fsyncs} fdatasyncs for \
         {syncs_asked} flushes asked, {written} bytes written for {payload_sent} bytes of payload \
         ({:.4}x), queue full {} times; baseline: {} fdatasyncs, one per flush",
        FRAMES_PER_SYNC * SYNCS_PER_ITER,
        written as f64 / payload_sent.max(1) as f64,
        edgerec_side.overflows,
        plain.syncs,
    );
    edgerec_side.close();
}

criterion_group!(benches, store_append);
criterion_main!(benches);
