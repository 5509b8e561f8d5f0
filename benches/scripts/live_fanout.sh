#!/usr/bin/env bash
# Live view fan-out (issue 12 point 4), measured on the real process: one loopback RTSP camera
# (1080p25, about 4 Mbit/s H.264 + 64 kbit/s AAC, the clip of rtsp_load.sh) recorded continuously
# by the release binary, watched by 0, 1, 8, 32 ... `live.mp4` viewers.
#
# It reports, per viewer count V (one phase each, a fresh recorder per phase):
# - edgerec's CPU (utime+stime of the process, /proc/PID/stat) over the window, and the viewers'
#   (curl processes, on their own line, never added to edgerec's);
# - that recording is unaffected: frames received per second (video and audio; the source sends
#   25 + 46.9), frames dropped for the recording in the window (goal 0), storage bytes written per
#   byte received (about 1.00 when everything received is recorded), the camera's state;
# - what live view did: viewers attached, frames they skipped (`edgerec_live_skipped_frames_total`),
#   the bytes each viewer got per second, and the hub's memory (`edgerec_live_hub_bytes`);
# and then, over all phases, CPU per viewer as the least-squares slope of CPU against V.
#
# Then, on one more recorder with no other viewer:
# - time to first picture of `live.mp4`: from sending the request to having the init segment and
#   the whole first fragment (a key frame: the cached GOP's), TTFP_REPEAT times, median and max;
# - time to a `snapshot.jpg` answer, TTFP_REPEAT times 0.5 s apart (a mix of a decode per key
#   frame and cached answers; the decodes are counted), median and max;
# - time to the first HLS playlist (the ring is built only while players ask, so the first one
#   waits for the next key frame);
# - latency of live.mp4 behind the RTSP source: a reference RTSP client (ffprobe, TCP, on the same
#   shared mount, so it is sent the same packets at the same time as edgerec) prints each video
#   packet's size as it arrives, and a live.mp4 viewer notes the arrival of each complete video
#   fragment (its sample size is the mdat's payload). The two sequences are aligned on the frame
#   sizes (noise makes them unique; AVC length prefixes and Annex B start codes are both 4 bytes),
#   and latency = viewer arrival of frame k - reference arrival of frame k's first packet (ffprobe's
#   parser prints frame k - 1 at that moment, because it ends a frame when the next one starts).
#   This is edgerec's own latency: depacketizing, the one frame a fragment waits for its duration
#   (40 ms at 25 fps), the hub and HTTP on loopback; it is also printed against ffprobe's line of
#   frame k itself (both then hold one frame). It does NOT include the camera's capture and encoding, the network, or
#   a browser's buffering, decoding and display (glass-to-glass = those + this).
#
# Output: one `live_fanout:` line per figure, in the units BENCHMARKS.md quotes.
#
# Usage: benches/scripts/live_fanout.sh [V...]   (default: 0 1 8 32)
#   env: MEASURE_SEC (default 60), WARMUP_SEC (default 10), TTFP_REPEAT (default 20),
#        LATENCY_SEC (default 30)
# Needs: target/release/edgerec (cargo build --release --locked), ffmpeg, ffprobe, curl, jq, stdbuf,
# /usr/bin/python3 with python3-gi and gst-rtsp-server (the peers of tests/support/rtsp_server.py).
set -euo pipefail

viewer_counts=("$@")
if [[ ${#viewer_counts[@]} -eq 0 ]]; then
    viewer_counts=(0 1 8 32)
fi
measure_sec="${MEASURE_SEC:-60}"
warmup_sec="${WARMUP_SEC:-10}"
ttfp_repeat="${TTFP_REPEAT:-20}"
latency_sec="${LATENCY_SEC:-30}"
# shellcheck source=benches/scripts/rtsp_source.sh
source "$(dirname "${BASH_SOURCE[0]}")/rtsp_source.sh"
bench_init live_fanout
server_pid=""
edgerec_pid=""
viewer_pids=()
trap 'bench_cleanup "${viewer_pids[@]}" $edgerec_pid $server_pid' EXIT
# The clip and server of rtsp_load.sh: 1080p25 noise at about 4 Mbit/s, one IDR per second.
bench_clip
bench_rtsp_server live_fanout
auth="admin:Bench-admin-1"

# Starts a recorder with the one camera (continuous recording, motion off: this measures live view,
# not motion analysis) and waits until the hub has a picture. Sets port and edgerec_pid.
start_edgerec() { # NAME
    local name=$1
    port="$(free_port)"
    local cfg="$work/edgerec-$name.toml"
    {
        printf 'version = 1\n[server]\nlisten = "127.0.0.1:%s"\ndata_dir = "%s"\n' "$port" "$work/data-$name"
        printf '[[storage]]\nid = "main"\nsize = "2GiB"\nsegment_size = "64MiB"\nsync_interval_ms = 1000\n'
        printf '[[camera]]\nid = "cam"\nsource = "%s"\ntransport = "tcp"\nrecord = "continuous"\n' "$url"
        printf '[camera.motion]\nenabled = false\n'
    } >"$cfg"
    echo "Bench-admin-1" | "$bin" user add --config "$cfg" --admin admin >/dev/null
    EDGEREC_LOG=warn "$bin" run --config "$cfg" >"$work/$name.log" 2>&1 9>&- &
    edgerec_pid=$!
    local code=""
    for _ in $(seq 1 600); do
        code="$(curl -s -u "$auth" -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/api/v1/cameras/cam/live" 9>&- || true)"
        [[ "$code" == 200 ]] && break
        sleep 0.1
    done
    if [[ "$code" != 200 ]]; then
        echo "live_fanout: no live picture after 60 s" >&2
        cat "$work/$name.log" >&2
        exit 1
    fi
}

stop_edgerec() { # NAME
    kill -TERM "$edgerec_pid"
    wait "$edgerec_pid" || echo "live_fanout: edgerec exited with $?" >&2
    edgerec_pid=""
    rm -rf "$work/data-$1"
}

# One sample: CPU ticks and RSS of edgerec and of the viewers, the camera's and storage's counters
# from /api/v1/status and the live metrics from /metrics.
sample() { # OUT PORT EDGEREC_PID VIEWER_PID...
    "$py" - "$@" <<'PY'
import json, os, sys, time, urllib.request

out, port, pid, viewers = sys.argv[1], sys.argv[2], int(sys.argv[3]), [int(p) for p in sys.argv[4:]]
auth = {"Authorization": "Basic YWRtaW46QmVuY2gtYWRtaW4tMQ=="}  # admin:Bench-admin-1

def get(path):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=auth)
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.read()

def ticks(p):
    try:
        with open(f"/proc/{p}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except OSError:
        return 0

def rss_kb(p):
    with open(f"/proc/{p}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0

status = json.loads(get("/api/v1/status"))
metrics = {}
for line in get("/metrics").decode().splitlines():
    if line.startswith("edgerec_live_") and '{camera="cam"}' in line:
        name, value = line.split('{camera="cam"} ')
        metrics[name] = float(value)
cam = next(c for c in status["cameras"] if c["id"] == "cam")
st = status["storages"][0]
rec = {
    "t": time.monotonic(),
    "ticks": ticks(pid),
    "rss_kb": rss_kb(pid),
    "viewer_ticks": sum(ticks(p) for p in viewers),
    "viewers_alive": sum(1 for p in viewers if os.path.exists(f"/proc/{p}/stat")),
    "frames_received": cam["frames_received"],
    "frames_dropped": cam["frames_dropped"],
    "bytes_received": cam["bytes_received"],
    "state": cam["state"],
    "bytes_written": st["bytes_written"],
    "live_viewers": metrics.get("edgerec_live_viewers", 0),
    "live_skipped": metrics.get("edgerec_live_skipped_frames_total", 0),
    "hub_bytes": metrics.get("edgerec_live_hub_bytes", 0),
}
with open(out, "w") as f:
    json.dump(rec, f)
PY
}

export RESULT_FILE="$work/results.jsonl"
echo "live_fanout: machine: nproc=$(nproc), cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), kernel=$(uname -r), load=$(cut -d' ' -f1-3 /proc/loadavg)"
echo "live_fanout: source $url ($(ffprobe -v error -show_entries format=bit_rate -of default=nw=1:nk=1 "$clip") bit/s clip, shared file mount); warm-up ${warmup_sec}s, window ${measure_sec}s"

for v in "${viewer_counts[@]}"; do
    start_edgerec "fanout-$v"
    viewer_pids=()
    for i in $(seq 1 "$v"); do
        # Each viewer ends by itself 2 s after the window and then writes what it got.
        curl -s -N -u "$auth" -o /dev/null --max-time $((warmup_sec + measure_sec + 2)) \
            -w '%{size_download} %{time_total}\n' "http://127.0.0.1:$port/api/v1/cameras/cam/live.mp4" \
            >"$work/viewer-$v-$i.out" 9>&- &
        viewer_pids+=($!)
    done
    sleep "$warmup_sec"
    sample "$work/a-$v.json" "$port" "$edgerec_pid" "${viewer_pids[@]}"
    sleep "$measure_sec"
    sample "$work/b-$v.json" "$port" "$edgerec_pid" "${viewer_pids[@]}"
    if [[ ${#viewer_pids[@]} -gt 0 ]]; then
        wait "${viewer_pids[@]}" 2>/dev/null || true
    fi
    viewer_pids=()
    stop_edgerec "fanout-$v"
    "$py" - "$v" "$work/a-$v.json" "$work/b-$v.json" "$work" <<'PY'
import glob, json, os, sys
v = int(sys.argv[1])
a, b = (json.load(open(p)) for p in sys.argv[2:4])
work = sys.argv[4]
hz = os.sysconf("SC_CLK_TCK")
dt = b["t"] - a["t"]
cpu = (b["ticks"] - a["ticks"]) / hz / dt * 100
viewer_cpu = (b["viewer_ticks"] - a["viewer_ticks"]) / hz / dt * 100
recv = b["bytes_received"] - a["bytes_received"]
written = (b["bytes_written"] - a["bytes_written"]) / recv if recv else 0
# What each viewer got over its whole life (curl's own count), as a rate.
rates = []
for path in glob.glob(f"{work}/viewer-{v}-*.out"):
    fields = open(path).read().split()
    if len(fields) == 2 and float(fields[1]) > 0:
        rates.append(int(fields[0]) * 8 / float(fields[1]) / 1e6)
per_viewer = min(rates) if rates else 0
line = (f"live_fanout: viewers={v} window={dt:.1f}s edgerec_cpu={cpu:.2f}% of one core "
        f"rss={b['rss_kb'] / 1024:.1f}MiB hub_bytes={b['hub_bytes'] / 1e6:.2f}MB "
        f"frames_received/s={(b['frames_received'] - a['frames_received']) / dt:.1f} "
        f"frames_dropped_in_window={b['frames_dropped'] - a['frames_dropped']} state={b['state']} "
        f"written/received={written:.4f} live_viewers={b['live_viewers']:.0f} "
        f"viewers_alive={b['viewers_alive']}/{v} skipped_in_window={b['live_skipped'] - a['live_skipped']:.0f} "
        f"slowest_viewer_rx={per_viewer:.2f}Mbit/s ({len(rates)} reported) | viewers' own cpu (excluded)={viewer_cpu:.2f}%")
print(line)
with open(os.environ["RESULT_FILE"], "a") as f:
    f.write(json.dumps({"viewers": v, "cpu_pct": cpu}) + "\n")
PY
done

"$py" - <<'PY'
import json, os
rows = [json.loads(l) for l in open(os.environ["RESULT_FILE"])]
if len({r["viewers"] for r in rows}) >= 2:
    n = len(rows)
    mx = sum(r["viewers"] for r in rows) / n
    my = sum(r["cpu_pct"] for r in rows) / n
    sxx = sum((r["viewers"] - mx) ** 2 for r in rows)
    slope = sum((r["viewers"] - mx) * (r["cpu_pct"] - my) for r in rows) / sxx
    print(f"live_fanout: cpu per live.mp4 viewer (least-squares slope over {n} phases) = {slope:.3f}% of one core "
          f"(goal <= 0.1%); intercept {my - slope * mx:.2f}%")
PY

# Time to first picture, snapshot, first HLS playlist and latency, on a recorder of its own.
start_edgerec ttfp
sleep "$warmup_sec"
"$py" - "$port" "$url" "$ttfp_repeat" "$latency_sec" <<'PY'
import http.client, json, statistics, struct, subprocess, sys, threading, time, urllib.request

port, rtsp_url, repeat, latency_sec = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
auth = {"Authorization": "Basic YWRtaW46QmVuY2gtYWRtaW4tMQ=="}  # admin:Bench-admin-1

def boxes(buf):
    """Complete top-level boxes at the start of buf: [(type, start, end)]."""
    out, at = [], 0
    while at + 8 <= len(buf):
        size, kind = struct.unpack(">I4s", buf[at:at + 8])
        if size == 1:
            if at + 16 > len(buf):
                break
            size = struct.unpack(">Q", buf[at + 8:at + 16])[0]
        if size < 8 or at + size > len(buf):
            break
        out.append((kind, at, at + size))
        at += size
    return out

def stream(path):
    conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=10)
    conn.request("GET", path, headers=auth)
    return conn, conn.getresponse()

def metric(name):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=auth)
    for line in urllib.request.urlopen(req, timeout=10).read().decode().splitlines():
        if line.startswith(name + '{camera="cam"} '):
            return float(line.split()[-1])
    return 0.0

def summary(name, values_ms, extra=""):
    print(f"live_fanout: {name}: median {statistics.median(values_ms):.1f} ms, max {max(values_ms):.1f} ms "
          f"over {len(values_ms)} requests{extra}")

# live.mp4: request -> init segment and the whole first fragment (moof + mdat of a key frame).
ttfp = []
for _ in range(repeat):
    start = time.monotonic()
    conn, r = stream("/api/v1/cameras/cam/live.mp4")
    buf = b""
    while True:
        chunk = r.read1(65536)
        if not chunk:
            raise SystemExit("live_fanout: live.mp4 ended before its first fragment")
        buf += chunk
        kinds = [k for k, _, _ in boxes(buf)]
        if kinds[:4] == [b"ftyp", b"moov", b"moof", b"mdat"]:
            break
    ttfp.append((time.monotonic() - start) * 1000)
    conn.close()
    time.sleep(0.37)  # Spread the requests over the GOP's phases.
summary("live.mp4 time to first picture (init segment + first key frame fragment)", ttfp)

decodes_before = metric("edgerec_live_snapshot_decodes_total")
snap = []
for _ in range(repeat):
    start = time.monotonic()
    conn, r = stream("/api/v1/cameras/cam/snapshot.jpg")
    body = r.read()
    if r.status != 200 or body[:2] != b"\xff\xd8":
        raise SystemExit(f"live_fanout: snapshot.jpg answered {r.status}")
    snap.append((time.monotonic() - start) * 1000)
    conn.close()
    time.sleep(0.5)
decodes = metric("edgerec_live_snapshot_decodes_total") - decodes_before
summary("snapshot.jpg answer", snap, f" ({decodes:.0f} of them decoded a key frame, the others were cached)")

start = time.monotonic()
conn, r = stream("/api/v1/cameras/cam/live/index.m3u8")
text = r.read().decode()
first_playlist = (time.monotonic() - start) * 1000
conn.close()
print(f"live_fanout: first HLS playlist (the ring starts with it) after {first_playlist:.1f} ms: "
      f"{r.status}, {text.count('.m4s')} segment(s)")

# Latency: the reference RTSP client and a live.mp4 viewer, side by side.
ref, view = [], []
stop = threading.Event()

def reference():
    cmd = ["stdbuf", "-oL", "ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-select_streams", "v",
           "-show_entries", "packet=size", "-of", "csv=p=0", rtsp_url]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    for line in p.stdout:
        t = time.time()
        # Lines are "SIZE," (and blank lines between); ffprobe writes each as its packet arrives.
        size = line.strip().split(",")[0]
        if size.isdigit():
            ref.append((t, int(size)))
        if stop.is_set():
            break
    p.kill()
    p.wait()

def viewer():
    conn, r = stream("/api/v1/cameras/cam/live.mp4")
    buf, skip = b"", None
    while not stop.is_set():
        chunk = r.read1(65536)
        if not chunk:
            break
        t = time.time()
        buf += chunk
        done = 0
        for kind, s, e in boxes(buf):
            if kind == b"mdat":
                view.append((t, e - s - 8))
            done = e
        buf = buf[done:]
    conn.close()

threads = [threading.Thread(target=reference), threading.Thread(target=viewer)]
for th in threads:
    th.start()
time.sleep(latency_sec)
stop.set()
for th in threads:
    th.join(timeout=15)
# Leave out the first 5 s of each (start-up, the viewer's cached GOP arriving at once).
ref = [x for x in ref if x[0] >= ref[0][0] + 5] if ref else []
view = [x for x in view if x[0] >= view[0][0] + 5] if view else []
if not ref or not view:
    raise SystemExit("live_fanout: no frames for the latency figure")
ref_sizes = [s for _, s in ref]
best = (0, 0)
for offset in range(-len(view), len(ref)):
    matches = sum(1 for i, (_, s) in enumerate(view) if 0 <= i + offset < len(ref) and ref_sizes[i + offset] == s)
    best = max(best, (matches, offset))
matches, offset = best
matched = [(t, i + offset) for i, (t, s) in enumerate(view) if 1 <= i + offset < len(ref) and ref_sizes[i + offset] == s]
if len(matched) < len(view) // 2:
    raise SystemExit(f"live_fanout: only {len(matched)} of {len(view)} fragments matched the reference's frames")

def figure(name, lat):
    lat = sorted(lat)
    print(f"live_fanout: live.mp4 latency {name}: median {statistics.median(lat):.1f} ms, "
          f"p95 {lat[int(len(lat) * 0.95)]:.1f} ms, max {lat[-1]:.1f} ms over {len(lat)} frames matched by size "
          f"({len(view)} fragments, {len(ref)} reference packets)")

# ffprobe's H.264 parser prints frame k when the first packet of frame k + 1 arrives, so the line of
# frame k - 1 marks the arrival of frame k's first packet at a client of the same server.
figure("behind the frame's arrival at an RTSP client (edgerec's own latency, including the one "
       "frame a fragment waits for its duration)", [(t - ref[j - 1][0]) * 1000 for t, j in matched])
figure("behind ffprobe printing the same frame (both hold a frame until the next one starts)",
       [(t - ref[j][0]) * 1000 for t, j in matched])
PY
stop_edgerec ttfp
echo "live_fanout: done; load now $(cut -d' ' -f1-3 /proc/loadavg)"
