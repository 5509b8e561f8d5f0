#!/usr/bin/env bash
# Whole-process load: N loopback RTSP cameras (1080p25, about 4 Mbit/s H.264 + 64 kbit/s AAC)
# recorded by the release binary, then the same N streams recorded by N ffmpeg processes the way
# Frigate records (`ffmpeg -c copy -f segment`), in the same run against the same server.
#
# For edgerec it reports CPU (utime+stime of the process, /proc/PID/stat), RSS (VmRSS, VmHWM),
# bytes written per byte received (/api/v1/status: storages[].bytes_written over the sum of
# cameras[].bytes_received, and the process's own disk writes from /proc/PID/io, which include
# the SQLite index), fdatasyncs per second of the storage, and frames dropped. For ffmpeg it
# reports the summed CPU and RSS of the N processes. The RTSP server runs in its own process and
# its CPU is reported on its own line, never added to either side.
#
# The server serves ONE file mount that all N clients share (set_shared): a pre-encoded clip
# replayed byte for byte, so the server does not encode 1080p video N times, or even once.
# The clip is made once with ffmpeg (libx264) and kept in target/tmp.
#
# Usage: benches/scripts/rtsp_load.sh N [N...]
#   env: MEASURE_SEC (default 60), WARMUP_SEC (default 10), RUNS (default 1: how many times the
#   whole interleaved sequence runs; per N: each edgerec mode of MODES, then the N ffmpeg processes),
#   MODES (default "motion nomotion"; issue 14 adds "sub": every camera also names the 640x360
#   second stream of the same scene in `[camera.second_stream]`, which motion analyses, the default
#   configuration of a camera that has one), FFMPEG (default 1; 0 skips the ffmpeg recorders),
#   GOP_SEC (default 1: the IDR interval of the clips in seconds, 1, 2, 4 or 8; see rtsp_source.sh)
# Needs: target/release/edgerec (cargo build --release --locked), ffmpeg, curl, jq, /usr/bin/python3 with
# python3-gi and gst-rtsp-server (the test peers of tests/support/rtsp_server.py).
set -euo pipefail

if [[ $# -lt 1 ]]; then
    echo "usage: $0 N [N...]" >&2
    exit 2
fi
measure_sec="${MEASURE_SEC:-60}"
runs="${RUNS:-1}"
warmup_sec="${WARMUP_SEC:-10}"
# shellcheck source=benches/scripts/rtsp_source.sh
source "$(dirname "${BASH_SOURCE[0]}")/rtsp_source.sh"
bench_init rtsp_load
server_pid=""
edgerec_pid=""
ffmpeg_pids=()
trap 'bench_cleanup "${ffmpeg_pids[@]}" $edgerec_pid $server_pid' EXIT
modes="${MODES:-motion nomotion}"
with_ffmpeg="${FFMPEG:-1}"
bench_clip
if [[ " $modes " == *" sub "* ]]; then
    bench_sub_clip
fi
bench_rtsp_server rtsp_load

# One sample of the processes and, for edgerec, of /api/v1/status. With a port, the sample is
# taken right after the storage's fsync counter moves (polled every 20 ms), so that what was
# received and what was written are compared at the same point of the sync cycle.
sample() { # OUT PORT|- PID...
    "$py" - "$@" <<'PY'
import json, os, sys, time, urllib.request

out, port, pids = sys.argv[1], sys.argv[2], [int(p) for p in sys.argv[3:]]

def status():
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/status",
                                 headers={"Authorization": "Basic YWRtaW46QmVuY2gtYWRtaW4tMQ=="})  # admin:Bench-admin-1
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.load(r)

def proc(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime field 14, stime field 15 (proc(5)).
    ticks = int(fields[11]) + int(fields[12])
    mem = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                mem[k] = int(v.split()[0])
    io = {}
    try:
        with open(f"/proc/{pid}/io") as f:
            for line in f:
                k, _, v = line.partition(":")
                io[k] = int(v)
    except OSError:
        pass
    return ticks, mem.get("VmRSS", 0), mem.get("VmHWM", 0), io.get("write_bytes", 0)

s = None
if port != "-":
    first = status()["storages"][0]["fsyncs"]
    deadline = time.monotonic() + 5
    while True:
        s = status()
        if s["storages"][0]["fsyncs"] != first or time.monotonic() > deadline:
            break
        time.sleep(0.02)
t = time.monotonic()
alive = [p for p in pids if os.path.exists(f"/proc/{p}/stat")]
per = [proc(p) for p in alive]
rec = {
    "t": t,
    "ticks": sum(x[0] for x in per),
    "rss_kb": sum(x[1] for x in per),
    "hwm_kb": sum(x[2] for x in per),
    "write_bytes": sum(x[3] for x in per),
    "alive": len(alive),
    "pids": len(pids),
}
if s is not None:
    cams = s["cameras"]
    st = s["storages"][0]
    rec.update(
        bytes_received=sum(c["bytes_received"] for c in cams),
        frames_received=sum(c["frames_received"] for c in cams),
        frames_dropped=sum(c["frames_dropped"] for c in cams),
        recording=sum(1 for c in cams if c["state"] == "recording"),
        bytes_written=st["bytes_written"],
        fsyncs=st["fsyncs"],
        max_sync_latency_ms=st["max_sync_latency_ms"],
        frames_dropped_overflow=st["frames_dropped_overflow"],
        # Motion: key frames analysed and those skipped because the motion thread was behind (a
        # loaded box skips, which lowers the CPU it costs: the figure is then not comparable).
        motion_analysed=sum((c.get("motion") or {}).get("analysed", 0) for c in cams),
        motion_skipped=sum((c.get("motion") or {}).get("skipped_behind", 0) for c in cams),
        # Second streams that stream: a run where some do not (a server refusing a client) measures
        # fewer second streams than it names, which this line makes plain.
        second_streaming=sum(1 for c in cams if (c.get("second_stream") or {}).get("state") == "streaming"),
    )
with open(out, "w") as f:
    json.dump(rec, f)
PY
}

# Waits SECONDS while asking for /api/v1/status every 5 s, as a status page would. It also works
# around an API that stops accepting after 30 s without a request (BENCHMARKS.md, "Whole process").
wait_polling() { # SECONDS PORT
    local end=$((SECONDS + $1))
    while ((SECONDS < end)); do
        sleep $(((end - SECONDS) < 5 ? (end - SECONDS) : 5))
        curl -s -u admin:Bench-admin-1 -o /dev/null "http://127.0.0.1:$2/api/v1/status" || true
    done
}

# Prints the figures of one phase from its two samples.
report() { # KIND N A.json B.json SERVER_A.json SERVER_B.json
    "$py" - "$@" <<'PY'
import json, os, sys
kind, n = sys.argv[1], int(sys.argv[2])
a, b, sa, sb = (json.load(open(p)) for p in sys.argv[3:7])
hz = os.sysconf("SC_CLK_TCK")
dt = b["t"] - a["t"]
cpu = (b["ticks"] - a["ticks"]) / hz / dt * 100
server = (sb["ticks"] - sa["ticks"]) / hz / (sb["t"] - sa["t"]) * 100
line = (f"{kind}: N={n} window={dt:.1f}s cpu={cpu:.1f}% of one core "
        f"({cpu / n:.2f}%/stream) rss={b['rss_kb'] / 1024:.1f}MiB hwm={b['hwm_kb'] / 1024:.1f}MiB "
        f"alive={b['alive']}/{b['pids']}")
if kind.startswith("edgerec"):
    recv = b["bytes_received"] - a["bytes_received"]
    wrote = b["bytes_written"] - a["bytes_written"]
    disk = b["write_bytes"] - a["write_bytes"]
    fsyncs = b["fsyncs"] - a["fsyncs"]
    line += (f" recording={b['recording']}/{n} rx={recv * 8 / dt / n / 1e6:.2f}Mbit/s/stream"
             f" written/received={wrote / recv:.4f} disk_write_bytes/received={disk / recv:.4f}"
             f" fsyncs/s={fsyncs / dt:.3f} frames_dropped={b['frames_dropped']}"
             f" (in window {b['frames_dropped'] - a['frames_dropped']})"
             f" overflow={b['frames_dropped_overflow']} max_sync_ms={b['max_sync_latency_ms']:.1f}"
             f" motion_analysed/s={(b['motion_analysed'] - a['motion_analysed']) / dt:.2f}"
             f" motion_skipped_behind={b['motion_skipped'] - a['motion_skipped']}"
             f" second_streams_streaming={b['second_streaming']}")
line += f" | rtsp server (excluded): cpu={server:.1f}%"
print(line)
with open(os.environ["RESULT_FILE"], "a") as f:
    f.write(json.dumps({"kind": kind, "n": n, "cpu_pct": cpu, "server_cpu_pct": server,
                        "rss_mib": b["rss_kb"] / 1024, "line": line}) + "\n")
PY
}

export RESULT_FILE="$work/results.jsonl"
echo "machine: nproc=$(nproc), cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), kernel=$(uname -r), fs of target/tmp: $(df -T "$repo_root/target/tmp" | awk 'NR==2 {print $2}')"
echo "server: $url ($(ffprobe -v error -show_entries format=bit_rate -of default=nw=1:nk=1 "$clip") bit/s clip, shared file mount); warm-up ${warmup_sec}s, window ${measure_sec}s"

# One edgerec phase: N cameras on one storage, the default 1 s sync interval, motion detection on
# (the project's default) or off.
run_edgerec() { # KIND N MOTION(on|off|sub)
    local kind=$1 n=$2 motion=$3
    port="$(free_port)"
    cfg="$work/edgerec-$kind-$n.toml"
    {
        printf 'version = 1\n[server]\nlisten = "127.0.0.1:%s"\ndata_dir = "%s"\n' "$port" "$work/data-$n"
        printf '[[storage]]\nid = "main"\nsize = "4GiB"\nsegment_size = "64MiB"\nsync_interval_ms = 1000\n'
        for i in $(seq 1 "$n"); do
            printf '[[camera]]\nid = "cam%02d"\nsource = "%s"\ntransport = "tcp"\n' "$i" "$url"
            if [[ "$motion" == off ]]; then
                printf '[camera.motion]\nenabled = false\n'
            elif [[ "$motion" == sub ]]; then
                printf '[camera.second_stream]\nsource = "%s"\ntransport = "tcp"\n' "$sub_url"
            fi
        done
    } >"$cfg"
    # No default password: a bench administrator, sent as HTTP Basic in the URLs below.
    echo "Bench-admin-1" | "$bin" user add --config "$cfg" --admin admin >/dev/null
    EDGEREC_LOG=warn "$bin" run --config "$cfg" >"$work/$kind-$n.log" 2>&1 9>&- &
    edgerec_pid=$!
    for _ in $(seq 1 600); do
        rec="$(curl -s -u admin:Bench-admin-1 "http://127.0.0.1:$port/api/v1/status" 2>/dev/null | jq '[.cameras[] | select(.frames_received > 0)] | length' 2>/dev/null || echo 0)"
        [[ "$rec" == "$n" ]] && break
        sleep 0.1
    done
    if [[ "${rec:-0}" != "$n" ]]; then
        echo "rtsp_load: only ${rec:-0} of $n cameras receive frames after 60 s" >&2
        cat "$work/$kind-$n.log" >&2
        exit 1
    fi
    wait_polling "$warmup_sec" "$port"
    sample "$work/e-$n-a.json" "$port" "$edgerec_pid"
    sample "$work/s-$n-a.json" - "$server_pid"
    wait_polling "$measure_sec" "$port"
    sample "$work/e-$n-b.json" "$port" "$edgerec_pid"
    sample "$work/s-$n-b.json" - "$server_pid"
    kill -TERM "$edgerec_pid"
    wait "$edgerec_pid" || echo "rtsp_load: edgerec exited with $?" >&2
    edgerec_pid=""
    report "$kind" "$n" "$work/e-$n-a.json" "$work/e-$n-b.json" "$work/s-$n-a.json" "$work/s-$n-b.json"
    rm -rf "$work/data-$n"
}

for run in $(seq 1 "$runs"); do
for n in "$@"; do
    echo "run $run of $runs, N=$n"
    for mode in $modes; do
        case "$mode" in
            motion) run_edgerec edgerec-motion "$n" on ;;
            nomotion) run_edgerec edgerec-nomotion "$n" off ;;
            sub) run_edgerec edgerec-sub "$n" sub ;;
            *) echo "rtsp_load: unknown mode $mode (motion, nomotion, sub)" >&2; exit 2 ;;
        esac
    done
    if [[ "$with_ffmpeg" == 0 ]]; then
        continue
    fi

    # ffmpeg: N processes, Frigate's recording command line.
    mkdir -p "$work/ff-$n"
    ffmpeg_pids=()
    for i in $(seq 1 "$n"); do
        ffmpeg -nostdin -hide_banner -loglevel error -rtsp_transport tcp -i "$url" -c copy \
            -f segment -segment_time 10 "$work/ff-$n/cam$i-%03d.mp4" 2>>"$work/ffmpeg-$n.log" 9>&- &
        ffmpeg_pids+=($!)
    done
    sleep "$warmup_sec"
    sample "$work/f-$n-a.json" - "${ffmpeg_pids[@]}"
    sample "$work/s-$n-fa.json" - "$server_pid"
    sleep "$measure_sec"
    sample "$work/f-$n-b.json" - "${ffmpeg_pids[@]}"
    sample "$work/s-$n-fb.json" - "$server_pid"
    du_bytes="$(du -sb "$work/ff-$n" | cut -f1)"
    kill -INT "${ffmpeg_pids[@]}" 2>/dev/null || true
    wait "${ffmpeg_pids[@]}" 2>/dev/null || true
    ffmpeg_pids=()
    report ffmpeg "$n" "$work/f-$n-a.json" "$work/f-$n-b.json" "$work/s-$n-fa.json" "$work/s-$n-fb.json"
    echo "ffmpeg: N=$n wrote $du_bytes bytes of segments in ${warmup_sec}+${measure_sec}s"
    rm -rf "$work/ff-$n"

    "$py" - "$n" <<'PY'
import json, os, sys
n = int(sys.argv[1])
rows = [json.loads(l) for l in open(os.environ["RESULT_FILE"])]
last = lambda kind: next(r for r in reversed(rows) if r["kind"] == kind and r["n"] == n)
f = last("ffmpeg")
for kind in ("edgerec-motion", "edgerec-nomotion", "edgerec-sub"):
    if not any(r["kind"] == kind and r["n"] == n for r in rows):
        continue
    e = last(kind)
    print(f"ratio: N={n} {kind} cpu / ffmpeg cpu = {e['cpu_pct'] / f['cpu_pct']:.3f} (goal <= 0.25)")
PY
done
done

# Summary over every run: medians per phase and N, and what motion detection adds per camera.
"$py" - "$@" <<'PY'
import json, os, statistics, sys
rows = [json.loads(l) for l in open(os.environ["RESULT_FILE"])]
print("summary (medians over runs): N | kind | cpu/stream | rss")
for n in map(int, sys.argv[1:]):
    med = {}
    for kind in ("edgerec-motion", "edgerec-nomotion", "edgerec-sub", "ffmpeg"):
        rs = [r for r in rows if r["kind"] == kind and r["n"] == n]
        if not rs:
            continue
        med[kind] = (statistics.median(r["cpu_pct"] for r in rs), statistics.median(r["rss_mib"] for r in rs), len(rs))
        print(f"summary: N={n} {kind} runs={len(rs)} cpu/stream={med[kind][0] / n:.2f}% rss={med[kind][1]:.1f}MiB")
    off = med.get("edgerec-nomotion")
    for kind, goal in (("edgerec-motion", 2.0), ("edgerec-sub", 1.3)):
        on = med.get(kind)
        if on is None or off is None:
            continue
        # Issue 14: CPU of motion on the main stream <= 2x recording only; on a 640x360 second
        # stream <= 1.3x; RSS growth <= 2 MB per analysed camera.
        print(f"summary: N={n} {kind} adds {(on[1] - off[1]) / n:.2f} MiB RSS and {(on[0] - off[0]) / n:.2f} % of a core"
              f" per camera; cpu {on[0] / off[0]:.2f}x recording only (goal <= {goal}x)")
PY
