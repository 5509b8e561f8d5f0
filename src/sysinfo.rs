//! System facts for status and metrics (MON-5, MON-7): uptime, load, CPU, memory, this process's
//! CPU time and RSS, temperatures, filesystem sizes. Read from /proc, /sys and statvfs only.
//! Invariant: a missing or unreadable file is `None` or an empty list, never an error: a kernel,
//! VM or container that lacks a file must not make status fail.

use std::path::Path;
use std::sync::Mutex;

/// Seconds since boot, from `/proc/uptime`.
pub fn uptime_seconds() -> Option<f64> {
    parse_uptime(&read("/proc/uptime")?)
}

/// Load averages over 1, 5 and 15 minutes, from `/proc/loadavg`.
pub fn load_average() -> Option<[f64; 3]> {
    parse_loadavg(&read("/proc/loadavg")?)
}

/// Memory from `/proc/meminfo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Memory {
    /// `MemTotal`: usable RAM.
    pub total_bytes: u64,
    /// `MemAvailable`: what can be allocated without swapping (MON-2 "memory available").
    pub available_bytes: u64,
}

pub fn memory() -> Option<Memory> {
    parse_meminfo(&read("/proc/meminfo")?)
}

/// This process's resource use.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProcessUsage {
    /// User plus system CPU time since the process started, seconds.
    pub cpu_seconds: Option<f64>,
    /// Resident set size, bytes.
    pub rss_bytes: Option<u64>,
}

pub fn process() -> ProcessUsage {
    let tick_hz = sysconf(nix::unistd::SysconfVar::CLK_TCK);
    let page_bytes = sysconf(nix::unistd::SysconfVar::PAGE_SIZE);
    ProcessUsage {
        cpu_seconds: read("/proc/self/stat")
            .as_deref()
            .and_then(parse_self_stat_ticks)
            .zip(tick_hz)
            .map(|(ticks, hz)| ticks as f64 / hz as f64),
        rss_bytes: read("/proc/self/statm")
            .as_deref()
            .and_then(parse_statm_resident_pages)
            .zip(page_bytes)
            .and_then(|(pages, size)| pages.checked_mul(size)),
    }
}

/// The filesystem that holds a path, from statvfs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Filesystem {
    pub total_bytes: u64,
    /// Bytes free to unprivileged users (`f_bavail`): the recorder does not run as root.
    pub free_bytes: u64,
}

/// `None` when the path does not exist (an unplugged storage disk) or statvfs fails.
pub fn filesystem(path: &Path) -> Option<Filesystem> {
    let v = nix::sys::statvfs::statvfs(path).ok()?;
    // The casts matter on 32-bit targets (Yocto ARM), where these are 32-bit types.
    #[allow(clippy::unnecessary_cast)]
    let (blocks, available, fragment) = (v.blocks() as u64, v.blocks_available() as u64, v.fragment_size() as u64);
    Some(Filesystem { total_bytes: blocks.checked_mul(fragment)?, free_bytes: available.checked_mul(fragment)? })
}

/// One thermal zone's reading.
#[derive(Clone, Debug, PartialEq)]
pub struct Temperature {
    /// The zone's directory name, e.g. `thermal_zone0`.
    pub zone: String,
    /// What the driver says it measures (`x86_pkg_temp`, `cpu-thermal`), empty when unknown.
    pub kind: String,
    pub celsius: f64,
}

/// Every readable `/sys/class/thermal/thermal_zone*`, sorted by zone. A VM or container usually
/// has none: that is an empty list.
pub fn temperatures() -> Vec<Temperature> {
    temperatures_in(Path::new("/sys/class/thermal"))
}

fn temperatures_in(dir: &Path) -> Vec<Temperature> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<Temperature> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let zone = e.file_name().to_str()?.to_owned();
            if !zone.starts_with("thermal_zone") {
                return None;
            }
            // A zone whose sensor is off answers the read with an error (ENODATA): skip it.
            let celsius = parse_millidegrees(&read(e.path().join("temp"))?)?;
            let kind = read(e.path().join("type")).map(|t| t.trim().to_owned()).unwrap_or_default();
            Some(Temperature { zone, kind, celsius })
        })
        .collect();
    out.sort_by(|a, b| natural_key(&a.zone).cmp(&natural_key(&b.zone)));
    out
}

/// `thermal_zone10` after `thermal_zone9`.
fn natural_key(zone: &str) -> (u64, &str) {
    let digits = zone.trim_start_matches(|c: char| !c.is_ascii_digit());
    (digits.parse().unwrap_or(u64::MAX), zone)
}

/// Total CPU busy percentage over windows of at least `MIN_CPU_WINDOW_SECONDS`, from the `cpu`
/// line of `/proc/stat`. The window is kept here and shared by every caller (status, metrics), so
/// two clients asking a millisecond apart do not get the noise of a millisecond's window: a call
/// inside a window that is still too short gets the last complete window's figure.
#[derive(Default)]
pub struct CpuSampler {
    /// Where the running window started and the busy % of the last complete one.
    window: Mutex<CpuWindow>,
}

/// The shortest window a busy percentage is computed over, seconds of wall time.
pub const MIN_CPU_WINDOW_SECONDS: u64 = 1;

impl CpuSampler {
    pub const fn new() -> Self {
        CpuSampler { window: Mutex::new(CpuWindow { start: None, last_percent: None }) }
    }

    /// Busy % of all CPUs (0..=100) over the last complete window of at least
    /// `MIN_CPU_WINDOW_SECONDS`; `None` until one window has passed since the first call, or
    /// when `/proc/stat` is unreadable.
    pub fn sample(&self) -> Option<f64> {
        let now = parse_proc_stat_cpu(&read("/proc/stat")?)?;
        // `/proc/stat` counts every online CPU's ticks, so a wall-time second is
        // CLK_TCK × online CPUs ticks; Linux's USER_HZ of 100 and one CPU when unknown.
        let hz = sysconf(nix::unistd::SysconfVar::CLK_TCK).unwrap_or(100);
        let cpus = sysconf(nix::unistd::SysconfVar::_NPROCESSORS_ONLN).unwrap_or(1);
        let min_ticks = MIN_CPU_WINDOW_SECONDS.saturating_mul(hz).saturating_mul(cpus);
        self.window.lock().expect("cpu window lock").advance(now, min_ticks)
    }
}

/// The running window of a `CpuSampler`.
#[derive(Default)]
struct CpuWindow {
    /// The totals when the running window started; `None` before the first sample.
    start: Option<CpuTimes>,
    /// Busy % of the last complete window; `None` before the first.
    last_percent: Option<f64>,
}

impl CpuWindow {
    /// Ends the running window at `now` if it spans at least `min_ticks` (all CPUs together)
    /// and returns the busy % of the last complete window.
    fn advance(&mut self, now: CpuTimes, min_ticks: u64) -> Option<f64> {
        let Some(start) = self.start else {
            self.start = Some(now);
            return self.last_percent;
        };
        match now.total_ticks.checked_sub(start.total_ticks) {
            Some(elapsed) if elapsed < min_ticks.max(1) => self.last_percent,
            Some(_) => {
                self.last_percent = now.busy_percent_since(&start);
                self.start = Some(now);
                self.last_percent
            }
            // Counters never go back; if they did, start again rather than report nonsense.
            None => {
                self.start = Some(now);
                self.last_percent
            }
        }
    }
}

/// The process-wide sampler behind status and metrics.
pub static CPU: CpuSampler = CpuSampler::new();

/// Cumulative ticks of the `cpu` line of `/proc/stat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct CpuTimes {
    /// Every column summed (guest time is already inside user and nice, so it is left out).
    total_ticks: u64,
    /// idle + iowait: time the CPUs did not run anything.
    idle_ticks: u64,
}

impl CpuTimes {
    fn busy_percent_since(&self, earlier: &CpuTimes) -> Option<f64> {
        let total = self.total_ticks.checked_sub(earlier.total_ticks)?;
        let idle = self.idle_ticks.checked_sub(earlier.idle_ticks)?;
        if total == 0 {
            return None;
        }
        Some(total.saturating_sub(idle) as f64 * 100.0 / total as f64)
    }
}

fn read(path: impl AsRef<Path>) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn sysconf(var: nix::unistd::SysconfVar) -> Option<u64> {
    nix::unistd::sysconf(var).ok().flatten().and_then(|v| u64::try_from(v).ok()).filter(|v| *v > 0)
}

/// `/proc/uptime`: "UPTIME IDLE" in seconds.
fn parse_uptime(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok().filter(|v: &f64| v.is_finite() && *v >= 0.0)
}

/// `/proc/loadavg`: "L1 L5 L15 RUNNING/TOTAL LASTPID".
fn parse_loadavg(text: &str) -> Option<[f64; 3]> {
    let mut it = text.split_whitespace().map(|f| f.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0));
    Some([it.next()??, it.next()??, it.next()??])
}

/// `/proc/meminfo`: "Key:   VALUE kB" lines. Kernels before 3.14 lack `MemAvailable`; then it is
/// estimated as free + buffers + cached, as `free` did.
fn parse_meminfo(text: &str) -> Option<Memory> {
    let field = |key: &str| {
        text.lines().find_map(|l| {
            let rest = l.strip_prefix(key)?.strip_prefix(':')?;
            let kib: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
            kib.checked_mul(1024)
        })
    };
    let total_bytes = field("MemTotal")?;
    let available_bytes = field("MemAvailable")
        .or_else(|| Some(field("MemFree")? + field("Buffers").unwrap_or(0) + field("Cached").unwrap_or(0)))?;
    Some(Memory { total_bytes, available_bytes: available_bytes.min(total_bytes) })
}

/// `/proc/self/stat`: utime + stime (fields 14 and 15) in clock ticks. The command name (field 2)
/// is in parentheses and may hold spaces and parentheses, so fields are counted after the last `)`.
fn parse_self_stat_ticks(text: &str) -> Option<u64> {
    let after_name = &text[text.rfind(')')? + 1..];
    // After the name come field 3 (state) onwards: utime is field 14, i.e. index 11 here.
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    utime.checked_add(stime)
}

/// `/proc/self/statm`: "SIZE RESIDENT SHARED ..." in pages.
fn parse_statm_resident_pages(text: &str) -> Option<u64> {
    text.split_whitespace().nth(1)?.parse().ok()
}

/// The aggregate `cpu` line of `/proc/stat`: user nice system idle iowait irq softirq steal
/// [guest guest_nice]. Old kernels have fewer columns; at least the first four are required.
fn parse_proc_stat_cpu(text: &str) -> Option<CpuTimes> {
    let line = text.lines().find(|l| l.split_whitespace().next() == Some("cpu"))?;
    let cols: Vec<u64> = line.split_whitespace().skip(1).map(|c| c.parse().ok()).collect::<Option<_>>()?;
    if cols.len() < 4 {
        return None;
    }
    let counted = &cols[..cols.len().min(8)];
    let total_ticks = counted.iter().try_fold(0u64, |a, c| a.checked_add(*c))?;
    let idle_ticks = cols[3].checked_add(cols.get(4).copied().unwrap_or(0))?;
    Some(CpuTimes { total_ticks, idle_ticks })
}

/// A thermal zone's `temp`: millidegrees Celsius, possibly negative.
fn parse_millidegrees(text: &str) -> Option<f64> {
    text.trim().parse::<i64>().ok().map(|m| m as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Parsers, on text copied from real machines.

    #[test]
    fn uptime_from_a_raspberry_pi() {
        assert_eq!(parse_uptime("351735.47 1394861.44\n"), Some(351735.47));
        assert_eq!(parse_uptime(""), None);
        assert_eq!(parse_uptime("garbage 1\n"), None);
    }

    #[test]
    fn loadavg_from_a_debian_server() {
        assert_eq!(parse_loadavg("0.52 0.58 0.59 2/1097 123456\n"), Some([0.52, 0.58, 0.59]));
        assert_eq!(parse_loadavg("0.52 0.58\n"), None);
        assert_eq!(parse_loadavg("0.52 x 0.59 1/2 3\n"), None);
    }

    #[test]
    fn meminfo_from_a_debian_server_and_an_old_kernel() {
        let modern = "MemTotal:        8000000 kB\nMemFree:          500000 kB\nMemAvailable:    6000000 kB\n\
                      Buffers:          100000 kB\nCached:          3000000 kB\nSwapCached:            0 kB\n";
        assert_eq!(
            parse_meminfo(modern),
            Some(Memory { total_bytes: 8_000_000 * 1024, available_bytes: 6_000_000 * 1024 })
        );
        // 3.10 kernels (old appliances) have no MemAvailable.
        let old = "MemTotal:        1000000 kB\nMemFree:          100000 kB\nBuffers:           20000 kB\n\
                   Cached:           300000 kB\n";
        assert_eq!(parse_meminfo(old), Some(Memory { total_bytes: 1_000_000 * 1024, available_bytes: 420_000 * 1024 }));
        assert_eq!(parse_meminfo("MemFree: 1 kB\n"), None);
        // `SwapCached` must not be taken for `Cached`, nor `MemTotalX` for `MemTotal`.
        assert_eq!(
            parse_meminfo("MemTotalX: 5 kB\nMemTotal: 4 kB\nMemFree: 1 kB\nSwapCached: 999 kB\n"),
            Some(Memory { total_bytes: 4096, available_bytes: 1024 })
        );
    }

    #[test]
    fn self_stat_with_a_hostile_command_name() {
        // A name with spaces and a parenthesis, as a renamed thread can have (prctl PR_SET_NAME).
        let stat = "4242 (my (evil) name) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 4 0 \
                    1000 123456789 2048 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0\n";
        assert_eq!(parse_self_stat_ticks(stat), Some(325));
        assert_eq!(parse_self_stat_ticks("4242 (x) S 1 2"), None);
        assert_eq!(parse_self_stat_ticks("no parenthesis"), None);
    }

    #[test]
    fn statm_resident_pages() {
        assert_eq!(parse_statm_resident_pages("30144 2048 1536 100 0 4000 0\n"), Some(2048));
        assert_eq!(parse_statm_resident_pages("30144\n"), None);
    }

    #[test]
    fn proc_stat_cpu_line_and_delta() {
        let a = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\nintr 1 2 3\n";
        let b = "cpu  160 0 70 900 70 0 0 0 0 0\ncpu0 80 0 35 450 35 0 0 0 0 0\nintr 1 2 3\n";
        let (a, b) = (parse_proc_stat_cpu(a).unwrap(), parse_proc_stat_cpu(b).unwrap());
        assert_eq!(a, CpuTimes { total_ticks: 1000, idle_ticks: 850 });
        // 200 ticks passed, 120 of them idle or iowait: 40 % busy.
        assert_eq!(b.busy_percent_since(&a), Some(40.0));
        assert_eq!(a.busy_percent_since(&a), None, "no tick passed");
        assert_eq!(a.busy_percent_since(&b), None, "counters never go back");
        // A 2.6-era line with four columns still parses.
        assert_eq!(parse_proc_stat_cpu("cpu 1 2 3 4\n"), Some(CpuTimes { total_ticks: 10, idle_ticks: 4 }));
        assert_eq!(parse_proc_stat_cpu("cpu0 1 2 3 4\n"), None, "only the aggregate line counts");
        assert_eq!(parse_proc_stat_cpu("cpu 1 2\n"), None);
    }

    /// Issue 12 point 3 (MON-5): a busy % covers at least the minimum window, however often
    /// status and metrics ask.
    #[test]
    fn cpu_busy_covers_at_least_the_minimum_window() {
        let at = |total_ticks, idle_ticks| CpuTimes { total_ticks, idle_ticks };
        let mut w = CpuWindow::default();
        assert_eq!(w.advance(at(1000, 900), 200), None, "the first sample starts the window");
        assert_eq!(w.advance(at(1100, 950), 200), None, "100 of 200 ticks: no complete window yet");
        // 200 ticks since the start, 100 of them idle: 50 %.
        assert_eq!(w.advance(at(1200, 1000), 200), Some(50.0));
        assert_eq!(w.advance(at(1201, 1000), 200), Some(50.0), "a call a tick later repeats the last window");
        assert_eq!(w.advance(at(1400, 1190), 200), Some(5.0), "then the next window: 10 of 200 busy");
        assert_eq!(w.advance(at(10, 5), 200), Some(5.0), "counters going back restart the window");
        assert_eq!(w.advance(at(210, 5), 200), Some(100.0));
    }

    #[test]
    fn thermal_zones_from_a_copied_sys_tree() {
        // The layout of a Raspberry Pi 4 plus an x86 package sensor; zone 2's sensor is off.
        let dir = tempfile::tempdir().unwrap();
        let zone = |name: &str, kind: Option<&str>, temp: Option<&str>| {
            let z = dir.path().join(name);
            std::fs::create_dir(&z).unwrap();
            if let Some(k) = kind {
                std::fs::write(z.join("type"), k).unwrap();
            }
            if let Some(t) = temp {
                std::fs::write(z.join("temp"), t).unwrap();
            }
        };
        zone("thermal_zone10", Some("x86_pkg_temp\n"), Some("-5500\n"));
        zone("thermal_zone0", Some("cpu-thermal\n"), Some("48686\n"));
        zone("thermal_zone1", None, Some("30000\n"));
        zone("thermal_zone2", Some("acpitz\n"), None);
        zone("cooling_device0", Some("fan\n"), Some("1\n"));
        let t = temperatures_in(dir.path());
        let seen: Vec<(&str, &str, f64)> = t.iter().map(|t| (t.zone.as_str(), t.kind.as_str(), t.celsius)).collect();
        assert_eq!(
            seen,
            [
                ("thermal_zone0", "cpu-thermal", 48.686),
                ("thermal_zone1", "", 30.0),
                ("thermal_zone10", "x86_pkg_temp", -5.5)
            ]
        );
        assert!(temperatures_in(&dir.path().join("missing")).is_empty());
    }

    // The real /proc and /sys of the machine running the tests.

    #[test]
    fn this_machine() {
        let up = uptime_seconds().expect("/proc/uptime on Linux");
        assert!(up > 0.0, "uptime {up}");
        let load = load_average().expect("/proc/loadavg on Linux");
        assert!(load.iter().all(|l| (0.0..10_000.0).contains(l)), "load {load:?}");
        let mem = memory().expect("/proc/meminfo on Linux");
        assert!(mem.total_bytes >= 16 << 20, "{mem:?}");
        assert!(mem.available_bytes <= mem.total_bytes, "{mem:?}");
        let p = process();
        let rss = p.rss_bytes.expect("/proc/self/statm");
        assert!(rss > 0 && rss < mem.total_bytes, "rss {rss}");
        assert!(p.cpu_seconds.expect("/proc/self/stat") >= 0.0);
        let fs = filesystem(Path::new("/")).expect("statvfs of /");
        assert!(fs.free_bytes <= fs.total_bytes && fs.total_bytes > 0, "{fs:?}");
        assert_eq!(filesystem(Path::new("/no/such/storage")), None);
        for t in temperatures() {
            assert!(t.zone.starts_with("thermal_zone"), "{t:?}");
            assert!((-60.0..200.0).contains(&t.celsius), "{t:?}");
        }
    }

    #[test]
    fn cpu_percent_is_a_delta_between_calls() {
        use crate::clocks::Clocks;
        let sampler = CpuSampler::new();
        assert_eq!(sampler.sample(), None, "the first call has nothing to compare with");
        // Burn CPU until a window of `MIN_CPU_WINDOW_SECONDS` has passed on the kernel's tick
        // counters; a deadline, not a count of rounds, bounds it on a loaded box.
        let deadline = crate::clocks::SystemClocks.monotonic() + std::time::Duration::from_secs(30);
        let mut x = 0u64;
        let mut second = None;
        while second.is_none() && crate::clocks::SystemClocks.monotonic() < deadline {
            for i in 0..100_000u64 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
            }
            second = sampler.sample();
        }
        let busy = second.expect("a window passed");
        assert!((0.0..=100.0).contains(&busy), "busy {busy}");
    }
}
