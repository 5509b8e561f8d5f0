#!/usr/bin/env bash
# Issue 16 benchmarks (IC-4b, IC-5, IC-6): a remote's retrieval throughput on loopback against
# `curl` of the same export, and the remote's CPU per Mbit/s served.
#
# 1. The remote (the release binary) records RECORD_SEC of one loopback RTSP camera: the 1080p25
#    clip of rtsp_load.sh (about 4.2 Mbit/s H.264 with an IDR every second, plus 64 kbit/s AAC),
#    continuous recording, motion off. Real H.264 recorded by the real ingest and writer.
# 2. It is restarted with the camera disabled (`enabled = false`), so that nothing but serving
#    uses its CPU. The range is the recording less its first and last 2 s (at most 1 hour, what one
#    retrieval may ask).
# 3. RUNS rounds, each one after the other in this order, on loopback:
#    - `curl` of `GET /api/v1/cameras/cam/export.mp4?from&to` to /dev/null (the baseline: the
#      export's MP4);
#    - the same export written into a file of the scratch directory (the filesystem the centrals'
#      stores are on) and made durable there (`sync --data`, an fdatasync), timed from curl's
#      start to the fdatasync's return: the disk-inclusive baseline, as a pull too lands its bytes
#      durably on that disk before it calls them retrieved (P1);
#    - `curl` of `GET /api/v1/cameras/cam/retrieve?from&to&align=key` (the frame stream v1);
#    per transfer: bytes, seconds (curl's time_total; for the disk baseline the wall time to the
#    fdatasync's end), and the remote's utime+stime (/proc/PID/stat) over it.
# 4. PULL_RUNS times, `edgerec pull` end to end: a fresh central (its own data dir, a 2 GiB
#    storage, `[[remote_site]]` over plain http on loopback, the one camera in `ranges` mode with
#    the same range, no bandwidth cap) is started, and the time is taken from its first status
#    answer until its status shows the range retrieved (nothing pending). Its rate is the bytes
#    written into its store (status `storages[0].bytes_written`) per second; the bytes it received
#    (status `pull`) and the remote's CPU over the run are printed too. The central asks in 60 s
#    windows, one after another, flushing its store after each. The time from the central's
#    launch (start-up included) is printed beside it: the first status answer comes a varying
#    0.2-0.5 s after the launch, while the transfer has begun.
#    The central also times itself: with `edgerec::pull::mirror=debug` it logs one `pull window
#    timings` line per window (monotonic start and length, and where the time went: the answer's
#    head, waiting for body bytes, the hand-off to the writer, flushes, the cursor commit). The
#    span from the first window's start to the last one's commit is the pull's own time, free of
#    the start-up and of the 50 ms status poll; its rate (`bytes_written` / span) is the figure
#    the ratios use, and the breakdown summed over the windows is printed (medians over runs).
#
# Output: one `retrieve_vs_curl:` line per figure with medians over the runs, in the units
# BENCHMARKS.md quotes: MB/s (10^6 bytes), ratios against the export's median, and the remote's
# CPU in CPU-seconds per 1000 Mbit served (= ms of CPU per Mbit) and in % of a core at the rate.
#
# Usage: benches/scripts/retrieve_vs_curl.sh
#   env: RECORD_SEC (180), RUNS (7), PULL_RUNS (3), REMOTE_DATA (a directory: the remote's data
#   dir and config are kept there; when it already holds a recording, step 1 is skipped and that
#   recording is served again, so repeated runs measure the same bytes and save the recording time)
# Needs: target/release/edgerec (cargo build --release --locked), ffmpeg, curl, jq, and the test
# peers of tests/support/rtsp_server.py (python3-gi, gst-rtsp-server).
set -euo pipefail

record_sec="${RECORD_SEC:-180}"
runs="${RUNS:-7}"
pull_runs="${PULL_RUNS:-3}"
# shellcheck source=benches/scripts/rtsp_source.sh
source "$(dirname "${BASH_SOURCE[0]}")/rtsp_source.sh"
bench_init retrieve_vs_curl
server_pid=""
edgerec_pid=""
central_pid=""
trap 'bench_cleanup $central_pid $edgerec_pid $server_pid' EXIT
bench_clip
bench_rtsp_server retrieve_vs_curl
auth="admin:Bench-admin-1"
port="$(free_port)"
api="http://127.0.0.1:$port/api/v1"
now_s() { date +%s.%N; }
ticks() { # PID -> utime+stime in clock ticks
    awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$1/stat"
}
hz="$(getconf CLK_TCK)"

remote_config() { # ENABLED
    {
        printf 'version = 1\n[server]\nlisten = "127.0.0.1:%s"\ndata_dir = "%s"\n' "$port" "$remote_dir"
        printf '[[storage]]\nid = "main"\nsize = "2GiB"\nsegment_size = "64MiB"\nsync_interval_ms = 1000\n'
        printf '[[camera]]\nid = "cam"\nsource = "%s"\ntransport = "tcp"\nrecord = "continuous"\nenabled = %s\n' "$url" "$1"
        printf '[camera.motion]\nenabled = false\n'
    } >"$work/remote.toml"
}

start_remote() {
    EDGEREC_LOG=warn "$bin" run --config "$work/remote.toml" >>"$work/remote.log" 2>&1 9>&- &
    edgerec_pid=$!
    for _ in $(seq 1 600); do
        curl -sf -u "$auth" -o /dev/null "$api/status" 9>&- && return 0
        sleep 0.1
    done
    echo "retrieve_vs_curl: the remote did not answer within 60 s" >&2
    exit 1
}

stop_remote() {
    kill -TERM "$edgerec_pid"
    wait "$edgerec_pid" || echo "retrieve_vs_curl: edgerec exited with $?" >&2
    edgerec_pid=""
}

# 1. Record (unless REMOTE_DATA holds a recording already).
remote_dir="${REMOTE_DATA:-$work/remote}"
if [[ -s "$remote_dir/bench-t-start" ]]; then
    t_start="$(cat "$remote_dir/bench-t-start")"
    echo "serving the recording kept in $remote_dir (from $t_start)"
else
    remote_config true
    echo "Bench-admin-1" | "$bin" user add --config "$work/remote.toml" --admin admin >/dev/null
    start_remote
    echo "recording $record_sec s of the 1080p25 clip"
    t_start="$(date -u -d '-1 min' +%Y-%m-%dT%H:%M:%SZ)"
    recorded=0
    for _ in $(seq 1 $(((record_sec + 120) * 2))); do
        recorded="$(curl -sf -u "$auth" "$api/cameras/cam/recordings?from=$t_start&to=$(date -u -d '+1 min' +%Y-%m-%dT%H:%M:%SZ)" \
            | "$py" -c '
import datetime, json, sys
r = json.load(sys.stdin)["recordings"]
s = lambda t: datetime.datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp()
print(int(s(r[0]["end"]) - s(r[0]["start"])) if r else 0)' || echo 0)"
        [[ "$recorded" -ge $((record_sec + 4)) ]] && break
        sleep 0.5
    done
    [[ "$recorded" -ge $((record_sec + 4)) ]] || { echo "retrieve_vs_curl: only $recorded s recorded" >&2; exit 1; }
    stop_remote
    echo "$t_start" >"$remote_dir/bench-t-start"
fi

# 2. Serve only.
remote_config false
start_remote
read -r from to < <(curl -sf -u "$auth" "$api/cameras/cam/recordings?from=$t_start&to=$(date -u -d '+1 min' +%Y-%m-%dT%H:%M:%SZ)" \
    | "$py" -c '
import datetime, json, sys
r = json.load(sys.stdin)["recordings"][0]
p = lambda t: datetime.datetime.fromisoformat(t.replace("Z", "+00:00"))
f = lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
span = min(p(r["end"]) - p(r["start"]) - datetime.timedelta(seconds=4), datetime.timedelta(hours=1))
a = p(r["start"]) + datetime.timedelta(seconds=2)
print(f(a), f(a + span))')
echo "range $from .. $to"
query="from=$from&to=$to"

# 3. curl of export.mp4 and of retrieve, alternating.
transfer() { # KIND URL [FILE] -> "KIND bytes seconds cpu_ticks http_code"
    local before after out t0 t1 dest="${3:-/dev/null}"
    before="$(ticks "$edgerec_pid")"
    t0="$(now_s)"
    out="$(curl -s -o "$dest" -u "$auth" -w '%{size_download} %{time_total} %{http_code}' "$2")"
    read -r bytes secs code <<<"$out"
    if [[ "$dest" != /dev/null ]]; then
        sync --data "$dest"
        t1="$(now_s)"
        secs="$("$py" -c "print($t1 - $t0)")"
        rm -f "$dest"
    fi
    after="$(ticks "$edgerec_pid")"
    echo "$1 $bytes $secs $((after - before)) $code"
}
: >"$work/runs"
for i in $(seq 1 "$runs"); do
    transfer export "$api/cameras/cam/export.mp4?$query" | tee -a "$work/runs"
    transfer export_disk "$api/cameras/cam/export.mp4?$query" "$work/export-disk.mp4" | tee -a "$work/runs"
    transfer retrieve "$api/cameras/cam/retrieve?$query&align=key" | tee -a "$work/runs"
done
codes="$(awk '{print $5}' "$work/runs" | sort -u | tr '\n' ' ')"
[[ "$codes" == "200 " ]] || { echo "retrieve_vs_curl: transfers answered $codes" >&2; exit 1; }

# 4. edgerec pull end to end.
printf 'Bench-admin-1' >"$work/remote.password"
chmod 600 "$work/remote.password"
for i in $(seq 1 "$pull_runs"); do
    cport="$(free_port)"
    ccfg="$work/central-$i.toml"
    {
        printf 'version = 1\n[server]\nlisten = "127.0.0.1:%s"\ndata_dir = "%s"\n' "$cport" "$work/central-$i"
        printf '[[storage]]\nid = "main"\nsize = "2GiB"\nsegment_size = "64MiB"\nsync_interval_ms = 1000\n'
        printf '[[remote_site]]\nname = "r"\nurl = "http://127.0.0.1:%s"\nuser = "admin"\npassword_file = "%s"\nlag_seconds = 2\n' \
            "$port" "$work/remote.password"
        printf '[[remote_site.camera]]\nremote = "cam"\nmode = "ranges"\n[[remote_site.camera.range]]\nfrom = "%s"\nto = "%s"\n' \
            "$from" "$to"
    } >"$ccfg"
    echo "Bench-admin-1" | "$bin" user add --config "$ccfg" --admin admin >/dev/null
    before="$(ticks "$edgerec_pid")"
    t_launch="$(now_s)"
    EDGEREC_LOG=warn,edgerec::pull::mirror=debug "$bin" pull --config "$ccfg" >"$work/central-$i.log" 2>&1 9>&- &
    central_pid=$!
    capi="http://127.0.0.1:$cport/api/v1"
    t0=""
    done_s=""
    for _ in $(seq 1 6000); do
        s="$(curl -sf -u "$auth" "$capi/status" 9>&- || true)"
        if [[ -n "$s" ]]; then
            [[ -n "$t0" ]] || t0="$(now_s)"
            if jq -e '.pull.sites[0].cameras[0] | (.pending | length) == 0 and (.retrieved | length) > 0' <<<"$s" >/dev/null; then
                done_s="$(now_s)"
                break
            fi
        fi
        sleep 0.05
    done
    after="$(ticks "$edgerec_pid")"
    [[ -n "$done_s" ]] || { echo "retrieve_vs_curl: pull run $i did not finish within 300 s: $s" >&2; exit 1; }
    written="$(jq '.storages[0].bytes_written' <<<"$s")"
    received="$(jq '.pull.sites[0].bytes_received' <<<"$s")"
    frames="$(jq '.pull.sites[0].cameras[0].frames_written' <<<"$s")"
    secs="$("$py" -c "print($done_s - $t0)")"
    from_launch="$("$py" -c "print($done_s - $t_launch)")"
    echo "pull $written $secs $((after - before)) 200 $received $frames $from_launch" | tee -a "$work/runs"
    grep 'pull window timings' "$work/central-$i.log" | sed "s/^/$i $written /" >>"$work/windows" || true
    kill -TERM "$central_pid"
    wait "$central_pid" || echo "retrieve_vs_curl: edgerec pull exited with $?" >&2
    central_pid=""
    rm -rf "$work/central-$i"
done
stop_remote

"$py" - "$work/runs" "$hz" "$from" "$to" "$work/windows" <<'PY'
import os, re, statistics, sys
path, hz, frm, to, windows = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
rows = {}
for line in open(path):
    f = line.split()
    rows.setdefault(f[0], []).append((int(f[1]), float(f[2]), int(f[3]), f[5:]))
p = "retrieve_vs_curl:"
print(f"{p} range {frm} .. {to}, {len(rows['export'])} runs of each transfer, {len(rows.get('pull', []))} pull runs")
med = {}
for kind, label in (("export", "curl export.mp4"), ("export_disk", "curl export.mp4 into a file + fdatasync"),
                    ("retrieve", "curl retrieve (frame stream)"),
                    ("pull", "edgerec pull (bytes written to the central's store)")):
    r = rows.get(kind)
    if not r:
        continue
    rates = [b / s / 1e6 for b, s, _, _ in r]
    med[kind] = statistics.median(rates)
    size = statistics.median(b for b, _, _, _ in r)
    secs = statistics.median(s for _, s, _, _ in r)
    # The remote's CPU per Mbit served: CPU seconds over all runs / megabits over all runs.
    cpu_s = sum(t for _, _, t, _ in r) / hz
    mbit = sum(b for b, _, _, _ in r) * 8 / 1e6
    per_mbit_ms = cpu_s / mbit * 1000
    core = statistics.median((t / hz) / s for _, s, t, _ in r) * 100
    print(f"{p} {label}: {size / 1e6:.1f} MB in {secs:.3f} s median, {med[kind]:.1f} MB/s median "
          f"(min {min(rates):.1f}, max {max(rates):.1f}); remote CPU {per_mbit_ms:.3f} ms per Mbit sent "
          f"({cpu_s:.2f} CPU-s for {mbit:.0f} Mbit), {core:.0f} % of a core while serving")
    if kind == "pull":
        rec = statistics.median(int(x[0]) for _, _, _, x in r)
        frames = statistics.median(int(x[1]) for _, _, _, x in r)
        print(f"{p} edgerec pull: {rec / 1e6:.1f} MB received from the remote, {frames:.0f} frames written (median)")
        launch = [float(x[2]) for _, _, _, x in r if len(x) > 2]
        if launch:
            print(f"{p} edgerec pull from the central's launch: {statistics.median(launch):.3f} s median, "
                  f"{statistics.median(b / float(x[2]) for b, _, _, x in r) / 1e6:.1f} MB/s median "
                  f"(start-up included; the figure above starts at its first status answer)")
# The central's own clock: per run, the span of its windows (first start to last commit) and
# the breakdown summed over its windows.
runs_w = {}
if os.path.exists(windows):
    for line in open(windows):
        run, written = line.split()[:2]
        kv = {k: float(v) for k, v in re.findall(r"\b(\w+)=([0-9.]+)\b", line) if k.endswith("_ms") or k in ("bytes", "frames", "flushes")}
        runs_w.setdefault(run, (int(written), []))[1].append(kv)
if runs_w:
    parts = ("head_ms", "body_wait_ms", "handoff_ms", "flush_ms", "commit_ms", "other_ms")
    per = []
    for written, ws in runs_w.values():
        ws.sort(key=lambda w: w["began_ms"])
        span = (ws[-1]["began_ms"] + ws[-1]["total_ms"] - ws[0]["began_ms"]) / 1000
        gaps = span * 1000 - sum(w["total_ms"] for w in ws)
        per.append(dict(span=span, rate=written / span / 1e6, windows=len(ws), gaps=gaps,
                        flushes=sum(w["flushes"] for w in ws), **{k: sum(w[k] for w in ws) for k in parts}))
    m = lambda k: statistics.median(r[k] for r in per)
    med["pull_central"] = m("rate")
    rates = [r["rate"] for r in per]
    print(f"{p} edgerec pull, timed by the central (first window's start to last window's commit): "
          f"{m('span'):.3f} s median, {m('rate'):.1f} MB/s median (min {min(rates):.1f}, max {max(rates):.1f}), "
          f"{m('windows'):.0f} windows")
    print(f"{p} edgerec pull breakdown (ms summed over the windows, median over runs): "
          + ", ".join(f"{k[:-3]} {m(k):.0f}" for k in parts)
          + f", between windows {m('gaps'):.0f}; {m('flushes'):.0f} flushes")
if "export" in med:
    for kind in ("retrieve", "pull", "pull_central"):
        if kind in med:
            print(f"{p} ratio {kind}/export throughput = {med[kind] / med['export']:.2f} (goal >= 0.80)")
if "export_disk" in med:
    for kind in ("pull", "pull_central"):
        if kind in med:
            print(f"{p} ratio {kind}/export_disk throughput = {med[kind] / med['export_disk']:.2f} "
                  f"(goal >= 0.80, the disk-inclusive baseline)")
PY
