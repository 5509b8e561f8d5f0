//! The cost of a raw V4L2 camera (issue 14): per frame, what the capture thread does with a raw
//! buffer — check and convert it to I420, then encode it to H.264 with openh264 at the capture
//! path's settings (1500 kbit/s, a key frame every 2 s, no skipping, one thread) — for 640x480 at
//! 25 fps in YUYV (vivid's and most UVC webcams' format) and NV12. Time per frame × 25 is the
//! share of one core a camera costs.
//!
//! The frames are synthetic but not trivial to encode: a textured background (a diagonal pattern
//! with fixed pseudo-random grain) and a bright square that moves 8 pixels a frame, so every frame
//! changes and the encoder spends real bits.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use edgerec::source::v4l2::RawEncodeBench;
use edgerec::source::PixelFormat;

const W: usize = 640;
const H: usize = 480;
const FPS: u32 = 25;
const FRAMES: usize = 50;

/// Luma of frame `n` at (x, y).
fn luma(n: usize, x: usize, y: usize) -> u8 {
    let grain = ((x * 7919 + y * 104_729) % 61) as u8;
    let sq = (n * 8) % (W - 96);
    if x >= sq && x < sq + 96 && (160..256).contains(&y) {
        235
    } else {
        (((x + y) / 4) as u8).wrapping_add(grain)
    }
}

fn frame(format: PixelFormat, n: usize) -> Vec<u8> {
    match format {
        PixelFormat::Yuyv => {
            let mut f = Vec::with_capacity(W * H * 2);
            for y in 0..H {
                for x in (0..W).step_by(2) {
                    f.extend_from_slice(&[luma(n, x, y), 128, luma(n, x + 1, y), 128]);
                }
            }
            f
        }
        PixelFormat::Nv12 => {
            let mut f: Vec<u8> = (0..H).flat_map(|y| (0..W).map(move |x| luma(n, x, y))).collect();
            f.resize(W * H * 3 / 2, 128);
            f
        }
        other => panic!("no frame maker for {other:?}"),
    }
}

fn v4l2_encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("v4l2_raw_640x480_to_h264");
    g.throughput(Throughput::Elements(1));
    for (name, format) in [("yuyv", PixelFormat::Yuyv), ("nv12", PixelFormat::Nv12)] {
        let frames: Vec<Vec<u8>> = (0..FRAMES).map(|n| frame(format, n)).collect();
        let mut enc = RawEncodeBench::new(format, W as u32, H as u32, FPS, 1500, Duration::from_secs(2)).unwrap();
        // Past the first key frame and the rate controller's start.
        let mut bytes = 0;
        for f in frames.iter().cycle().take(2 * FRAMES) {
            bytes += enc.frame(f).unwrap();
        }
        eprintln!(
            "v4l2_encode: {name}: {:.0} kbit/s over the warm-up at {FPS} fps",
            bytes as f64 * 8.0 / (2 * FRAMES) as f64 * f64::from(FPS) / 1000.0
        );
        let mut i = 0;
        g.bench_function(name, |b| {
            b.iter(|| {
                i += 1;
                enc.frame(&frames[i % FRAMES]).unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, v4l2_encode);
criterion_main!(benches);
