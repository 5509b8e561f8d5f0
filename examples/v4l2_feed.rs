//! An MJPEG camera of known motion for tests/v4l2_mjpeg_vm.rs (issue 14, DEV-1, MD-1): writes JPEGs of a
//! still scene into a v4l2loopback output device at a fixed rate, with a square that moves only
//! between two known times, so the recorder's capture, export and motion analysis can be checked
//! against what was written. Runs in the test VM (the project's own feeder: nothing from the lab's
//! tools is needed in the guest).
//!
//! usage: v4l2_feed DEVICE WIDTH HEIGHT FPS SECONDS MOVE_FROM_S MOVE_TO_S
//!
//! Prints `FEED format WxH MJPG sizeimage=N`, then `MOVE_START <unix µs>` and `MOVE_END <unix µs>`
//! when the square starts and stops moving, and `FEED_DONE <frames written>` at the end.

use std::io::Write;
use std::time::Duration;

use edgerec::clocks::{Clocks, SystemClocks};
use v4l::video::Output;
use v4l::FourCC;

/// Side of the moving square, in pixels.
const SQUARE_PX: u16 = 48;
/// Frames of one sweep of the moving square (2 s at 25 fps); it then starts again on the left.
const SWEEP_FRAMES: u16 = 50;

/// A textured still background (gradient and blocks, so the JPEG is not trivial) with a white
/// square whose top left corner is at (`x`, `y`).
fn scene(width: u16, height: u16, x: u16, y: u16) -> Vec<u8> {
    let (w, h) = (usize::from(width), usize::from(height));
    let mut rgb = vec![0u8; w * h * 3];
    for row in 0..h {
        for col in 0..w {
            let block = if (row / 32 + col / 32) % 2 == 0 { 20 } else { 0 };
            let v = (60 + col * 80 / w + row * 40 / h + block) as u8;
            rgb[(row * w + col) * 3..(row * w + col) * 3 + 3].copy_from_slice(&[v, v / 2 + 30, 120 - v / 3]);
        }
    }
    let (x, y, side) = (usize::from(x), usize::from(y), usize::from(SQUARE_PX));
    for row in y..(y + side).min(h) {
        for col in x..(x + side).min(w) {
            rgb[(row * w + col) * 3..(row * w + col) * 3 + 3].copy_from_slice(&[250, 250, 250]);
        }
    }
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 80)
        .encode(&rgb, width, height, jpeg_encoder::ColorType::Rgb)
        .expect("encode a test scene");
    out
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize, name: &str) -> T {
    args.get(i).and_then(|a| a.parse().ok()).unwrap_or_else(|| {
        eprintln!("usage: v4l2_feed DEVICE WIDTH HEIGHT FPS SECONDS MOVE_FROM_S MOVE_TO_S ({name} missing or bad)");
        std::process::exit(2)
    })
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let device: String = arg(&args, 1, "DEVICE");
    let (width, height): (u16, u16) = (arg(&args, 2, "WIDTH"), arg(&args, 3, "HEIGHT"));
    let fps: u32 = arg(&args, 4, "FPS");
    let seconds: u32 = arg(&args, 5, "SECONDS");
    let (move_from_s, move_to_s): (u32, u32) = (arg(&args, 6, "MOVE_FROM_S"), arg(&args, 7, "MOVE_TO_S"));
    let y = (height - SQUARE_PX) / 2;
    let step = (width - SQUARE_PX - 40) / SWEEP_FRAMES;
    let still = scene(width, height, 20, y);
    let sweep: Vec<Vec<u8>> = (0..SWEEP_FRAMES).map(|i| scene(width, height, 20 + step * (i + 1), y)).collect();
    let max_len = sweep.iter().map(Vec::len).chain([still.len()]).max().unwrap_or(0);

    let dev = v4l::Device::with_path(&device)?;
    let mut fmt = Output::format(&dev)?;
    fmt.width = u32::from(width);
    fmt.height = u32::from(height);
    fmt.fourcc = FourCC::new(b"MJPG");
    fmt.size = u32::try_from(max_len + 4096).expect("a JPEG of a few dozen KiB");
    let fmt = Output::set_format(&dev, &fmt)?;
    println!("FEED format {}x{} {} sizeimage={}", fmt.width, fmt.height, fmt.fourcc, fmt.size);
    let mut out = std::fs::OpenOptions::new().write(true).open(&device)?;

    let clocks = SystemClocks;
    let interval = Duration::from_secs(1) / fps;
    let start = clocks.monotonic();
    let total = u64::from(fps) * u64::from(seconds);
    let (move_from, move_to) = (u64::from(fps) * u64::from(move_from_s), u64::from(fps) * u64::from(move_to_s));
    let mut written = 0u64;
    for n in 0..total {
        // An absolute schedule: a late frame does not push the later ones back.
        let due = start + interval * u32::try_from(n).expect("frames fit u32");
        let now = clocks.monotonic();
        if due > now {
            std::thread::sleep(due - now);
        }
        if n == move_from {
            println!("MOVE_START {}", clocks.realtime_us());
        }
        if n == move_to {
            println!("MOVE_END {}", clocks.realtime_us());
        }
        let moving = (move_from..move_to).contains(&n);
        let frame = if moving { &sweep[((n - move_from) % u64::from(SWEEP_FRAMES)) as usize] } else { &still };
        // One write is one frame for v4l2loopback.
        out.write_all(frame)?;
        written += 1;
    }
    println!("FEED_DONE {written}");
    std::io::stdout().flush()
}
