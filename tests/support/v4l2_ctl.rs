//! Guest-side helper of the V4L2 VM tests (issue 14, DEV-16): presses a V4L2 button control, so
//! a test can unplug a camera in a real kernel. vivid's `Disconnect` control (its Streaming
//! class) emulates a USB disconnect: every open of the node then fails with `ENODEV` and every
//! open file handle gets `ENODEV`, until the last handle is closed, when vivid registers the node
//! again (the camera is back).
//!
//! ```text
//! v4l2_ctl DEVICE list
//! v4l2_ctl DEVICE press CONTROL [HOLD_MS]
//! ```
//! - `list` prints each control's id, type and name.
//! - `press` sets the button control named CONTROL (case-insensitive), then keeps the node open
//!   for HOLD_MS ms (default 0) before closing it: with vivid the camera stays unplugged at least
//!   that long, and comes back when the last handle closes. It prints `PRESSED wall_us=…` after
//!   the press and `RELEASED wall_us=…` once its handle is closed (CLOCK_REALTIME, µs), so a test
//!   can time the recorder's recovery from the moment the device could be back.
//!
//! A binary of the package only with the `fault-injection` feature (the test feature; see
//! Cargo.toml), which the VM tests copy into the guest beside `edgerec`.

use std::process::ExitCode;
use std::time::Duration;

use edgerec::clocks::{Clocks, SystemClocks};
use v4l::control::{Control, Type, Value};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        [device, "list"] => list(device),
        [device, "press", name] => press(device, name, 0),
        [device, "press", name, hold_ms] => match hold_ms.parse() {
            Ok(ms) => press(device, name, ms),
            Err(e) => Err(format!("HOLD_MS {hold_ms:?}: {e}")),
        },
        _ => Err("usage: v4l2_ctl DEVICE list | DEVICE press CONTROL [HOLD_MS]".to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("v4l2_ctl: {e}");
            ExitCode::FAILURE
        }
    }
}

fn open(device: &str) -> Result<v4l::Device, String> {
    v4l::Device::with_path(device).map_err(|e| format!("open {device}: {e}"))
}

fn list(device: &str) -> Result<(), String> {
    let dev = open(device)?;
    for c in dev.query_controls().map_err(|e| format!("{device}: QUERY_EXT_CTRL: {e}"))? {
        println!("{:#010x} {:?} {}", c.id, c.typ, c.name);
    }
    Ok(())
}

fn press(device: &str, name: &str, hold_ms: u64) -> Result<(), String> {
    let dev = open(device)?;
    let controls = dev.query_controls().map_err(|e| format!("{device}: QUERY_EXT_CTRL: {e}"))?;
    let control = controls
        .iter()
        .find(|c| c.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| format!("{device} has no control {name:?}"))?;
    if control.typ != Type::Button {
        return Err(format!("{device}: control {name:?} is a {:?}, not a button", control.typ));
    }
    dev.set_control(Control { id: control.id, value: Value::None })
        .map_err(|e| format!("{device}: press {name:?}: {e}"))?;
    println!("PRESSED wall_us={}", SystemClocks.realtime_us());
    // The unplugged time is the scenario (how long the camera stays away), not a wait for a
    // result.
    std::thread::sleep(Duration::from_millis(hold_ms));
    drop(dev);
    println!("RELEASED wall_us={}", SystemClocks.realtime_us());
    Ok(())
}
