#!/usr/bin/env bash
# Issue 13 benchmarks (AR-1, ST-17): the archive round's throughput against `cp` of the same bytes
# on the same disk, with N loopback RTSP cameras recording meanwhile, and the export's time to
# first byte from the ring against the same export from an archive stage.
#
# 1. The ring of storage `main` is seeded with SEED_HOURS finished hours (SEED_FRAMES frames of
#    20 kB each per hour, camera `seeded`) through the store's own writer
#    (examples/powercut_archive.rs, the seeder of the archive power-cut trial).
# 2. The release binary starts with one archive stage on the same disk and N cameras
#    (1080p25 ~4 Mbit/s + AAC, the clip and server of rtsp_load.sh; motion as the project's
#    default unless MOTION=off). Its round at start copies the seeded hours while the cameras
#    record. Archive time = the round's start to end from /api/v1/status; bytes = the slices'
#    files (Media + Recording).
# 3. Baseline, same run, cameras still recording: `cp -r` of those slice directories to another
#    directory of the same disk, then `sync -f` (the round fsyncs each slice; cp gets one sync).
#    Ratio = cp time / archive time (1.0: the round copies as fast as cp; goal >= 0.80).
# 4. Frames dropped by any camera or the storage during all this (goal 0).
# 5. The cameras go on until the ring has reclaimed the oldest seeded hour (ring size RING_MIB),
#    so that hour is held by the stage only while the newest seeded hour is still in the ring.
#    Then TTFB_RUNS exports of each (`GET export.mp4` of the whole hour, alternating), reporting
#    the median time to first byte and to the last byte (curl's time_starttransfer/time_total).
#
# Usage: benches/scripts/archive_vs_cp.sh [N]        N cameras, default 8
#   env: SEED_HOURS (24), SEED_FRAMES (1000: 20 MB per hour), RING_MIB (768), MOTION (on|off),
#   TTFB_RUNS (7)
# Needs: cargo (builds the release binary and the seeder), ffmpeg, curl, jq, and the test peers of
# tests/support/rtsp_server.py (python3-gi, gst-rtsp-server).
set -euo pipefail

n="${1:-8}"
seed_hours="${SEED_HOURS:-24}"
seed_frames="${SEED_FRAMES:-1000}"
ring_mib="${RING_MIB:-768}"
motion="${MOTION:-on}"
ttfb_runs="${TTFB_RUNS:-7}"

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
cargo build --release --locked --bin edgerec --example powercut_archive >/dev/null 2>&1 \
    || { echo "archive_vs_cp: cargo build --release --locked failed" >&2; exit 1; }
# shellcheck source=benches/scripts/rtsp_source.sh
source benches/scripts/rtsp_source.sh
bench_init archive_vs_cp
seeder="${CARGO_TARGET_DIR:-$repo_root/target}/release/examples/powercut_archive"
server_pid=""
edgerec_pid=""
trap 'bench_cleanup $edgerec_pid $server_pid' EXIT
bench_clip
bench_rtsp_server archive_vs_cp

data="$work/data"
nas="$work/nas"
mkdir -p "$data" "$nas"
port="$(free_port)"
api="http://127.0.0.1:$port/api/v1"
status() { curl -sf -u admin:Bench-admin-1 "$api/status"; }
now_s() { date +%s.%N; }

echo "seeding $seed_hours hours x $seed_frames frames x 20 kB into a ${ring_mib} MiB ring"
seeded="$(SEED_STORAGE_BYTES=$((ring_mib << 20)) SEED_SEGMENT_BYTES=$(((ring_mib / 8) << 20)) \
    "$seeder" seed "$data" "$data/ring" "$seed_hours" "$seed_frames" "$work/seqs.txt" | tail -n 1)"
echo "$seeded"
first_hour="$(sed -n 's/.*first_hour=\([0-9]*\).*/\1/p' <<<"$seeded")"
cfg="$work/edgerec.toml"
{
    printf 'version = 1\n[server]\nlisten = "127.0.0.1:%s"\ndata_dir = "%s"\n' "$port" "$data"
    printf '[[storage]]\nid = "main"\npath = "%s"\nsize = "%sMiB"\nsegment_size = "%sMiB"\n' "$data/ring" "$ring_mib" "$((ring_mib / 8))"
    printf 'sync_interval_ms = 1000\nretention_days = 7\n'
    printf '[[storage.archive]]\nname = "nas"\npath = "%s"\nretention_days = 30\nmax_size = "8GiB"\nschedule = "hourly"\nmount = false\n' "$nas"
    # The seeded camera must be configured for its recordings to be exported; the demo source
    # adds a few kbit/s to the current hour only.
    printf '[[camera]]\nid = "seeded"\nsource = "demo:"\n[camera.motion]\nenabled = false\n'
    for i in $(seq 1 "$n"); do
        printf '[[camera]]\nid = "cam%02d"\nsource = "%s"\ntransport = "tcp"\n' "$i" "$url"
        [[ "$motion" == off ]] && printf '[camera.motion]\nenabled = false\n'
    done
} >"$cfg"
echo "Bench-admin-1" | "$bin" user add --config "$cfg" --admin admin >/dev/null
EDGEREC_LOG=warn "$bin" run --config "$cfg" >"$work/edgerec.log" 2>&1 9>&- &
edgerec_pid=$!

# The round at start: wait for its end in status.
round=""
for _ in $(seq 1 6000); do
    round="$(status 2>/dev/null | jq -c '.storages[0].archives[0].last_round // empty' 2>/dev/null || true)"
    [[ -n "$round" ]] && break
    sleep 0.1
done
[[ -n "$round" ]] || { echo "archive_vs_cp: no round ended within 600 s" >&2; exit 1; }
[[ "$(jq -r .error <<<"$round")" == null ]] || { echo "archive_vs_cp: the round failed: $round" >&2; exit 1; }
s="$(status)"
recording="$(jq '[.cameras[] | select(.id != "seeded" and .frames_received > 0)] | length' <<<"$s")"
# RFC 3339 to seconds with fractions.
secs() { "$py" -c 'import sys, datetime; print(datetime.datetime.fromisoformat(sys.argv[1].replace("Z", "+00:00")).timestamp())' "$1"; }
archive_s="$("$py" -c "print($(secs "$(jq -r .end <<<"$round")") - $(secs "$(jq -r .start <<<"$round")"))")"
copied="$(jq .copied <<<"$round")"
stage="$nas/main"
slice_bytes="$(find "$stage" -mindepth 2 -type f \( -name Media -o -name Recording \) -printf '%s\n' | awk '{s += $1} END {print s}')"

# Baseline: the same bytes with cp on the same disk while the cameras record.
mkdir -p "$work/cp"
t0="$(now_s)"
find "$stage" -mindepth 1 -maxdepth 1 -type d -name '* - *' -exec cp -r {} "$work/cp/" \;
sync -f "$work/cp"
t1="$(now_s)"
cp_s="$("$py" -c "print($t1 - $t0)")"
rm -rf "$work/cp"

# Step 5: wait until the ring no longer holds the oldest seeded hour.
oldest_end_s=$(((first_hour + 1) * 3600))
for _ in $(seq 1 1800); do
    o="$(status | jq -r '.storages[0].oldest_recording // empty')"
    [[ -n "$o" ]] && "$py" -c "import sys; sys.exit(0 if $(secs "$o") >= $oldest_end_s else 1)" && break
    sleep 1
done
o="$(status | jq -r '.storages[0].oldest_recording // empty')"
"$py" -c "import sys; sys.exit(0 if $(secs "$o") >= $oldest_end_s else 1)" \
    || { echo "archive_vs_cp: the ring still holds the oldest seeded hour after 30 min ($o)" >&2; exit 1; }
s="$(status)"
dropped="$(jq '([.cameras[].frames_dropped] | add) + ([.storages[] | .frames_dropped_overflow + .frames_dropped_unavailable] | add)' <<<"$s")"

iso() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }
ttfb() { # FROM_S -> "starttransfer total size"
    curl -s -o /dev/null -u admin:Bench-admin-1 -w '%{time_starttransfer} %{time_total} %{size_download} %{http_code}\n' \
        "$api/cameras/seeded/export.mp4?from=$(iso "$1")&to=$(iso $(($1 + 3600)))"
}
stage_from=$((first_hour * 3600))
ring_from=$(((first_hour + seed_hours - 1) * 3600))
: >"$work/ttfb-stage"; : >"$work/ttfb-ring"
for _ in $(seq 1 "$ttfb_runs"); do
    ttfb "$stage_from" >>"$work/ttfb-stage"
    ttfb "$ring_from" >>"$work/ttfb-ring"
done
median() { # FILE COLUMN
    sort -g -k"$2","$2" "$1" | awk -v c="$2" '{v[NR] = $c} END {print v[int((NR + 1) / 2)]}'
}
codes="$(awk '{print $4}' "$work/ttfb-stage" "$work/ttfb-ring" | sort -u | tr '\n' ' ')"
[[ "$codes" == "200 " ]] || { echo "archive_vs_cp: exports answered $codes" >&2; exit 1; }

kill -TERM "$edgerec_pid"
wait "$edgerec_pid" || echo "archive_vs_cp: edgerec exited with $?" >&2
edgerec_pid=""

"$py" - "$slice_bytes" "$archive_s" "$cp_s" "$copied" "$n" "$recording" "$dropped" "$motion" \
    "$(median "$work/ttfb-stage" 1)" "$(median "$work/ttfb-stage" 2)" "$(head -n 1 "$work/ttfb-stage" | awk '{print $3}')" \
    "$(median "$work/ttfb-ring" 1)" "$(median "$work/ttfb-ring" 2)" "$(head -n 1 "$work/ttfb-ring" | awk '{print $3}')" <<'PY'
import sys
(b, a, c, copied, n, rec, dropped, motion, st_first, st_total, st_size, r_first, r_total, r_size) = sys.argv[1:]
b, a, c = int(b), float(a), float(c)
mb = b / 1e6
print(f"archive round: {copied} hour slices, {mb:.1f} MB in {a:.2f} s = {mb / a:.1f} MB/s "
      f"while {rec} of {n} cameras recorded (motion {motion})")
print(f"cp -r + sync -f of the same files on the same disk: {c:.2f} s = {mb / c:.1f} MB/s")
print(f"ratio archive/cp throughput = {c / a:.2f} (goal >= 0.80)")
print(f"frames dropped (cameras + storage) = {dropped} (goal 0)")
print(f"export.mp4 of one seeded hour ({int(st_size) / 1e6:.1f} MB) from the stage: first byte {float(st_first) * 1000:.1f} ms, "
      f"last byte {float(st_total) * 1000:.0f} ms (median)")
print(f"export.mp4 of one seeded hour ({int(r_size) / 1e6:.1f} MB) from the ring:  first byte {float(r_first) * 1000:.1f} ms, "
      f"last byte {float(r_total) * 1000:.0f} ms (median)")
print(f"ratio stage/ring time to first byte = {float(st_first) / float(r_first):.2f}")
PY
