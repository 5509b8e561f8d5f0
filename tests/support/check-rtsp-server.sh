#!/usr/bin/env bash
# Smoke test of tests/support/rtsp_server.py against ffmpeg's RTSP client:
# starts the server with one mount of each kind, probes every mount with three
# concurrent ffprobe clients over RTP/TCP, records 20 s of the looping file mount
# and checks that both tracks are continuous across the loop seam, and reports the
# key-picture NAL types of the two H.265 mounts (IDR-only vs CRA).
#
# Usage: tests/support/check-rtsp-server.sh   (needs the test peers: .ci/install-test-peers.sh)
set -euo pipefail

support="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
clip="$support/../../src/source/demo_clip.mp4"
work="$(mktemp -d)"
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

mkfifo "$work/ready"
/usr/bin/python3 "$support/rtsp_server.py" --port 0 \
    --mount "/h264aac=file:$clip" \
    --mount /live264=live:h264+aac \
    --mount /live265=live:h265 \
    --mount /cra265=live:h265cra \
    --mount /mjpeg=live:mjpeg+pcma \
    >"$work/ready" 2>"$work/server.log" &
server_pid=$!
read -r -t 30 word base <"$work/ready"
[[ "$word" == READY ]] || { echo "server did not start"; cat "$work/server.log"; exit 1; }
echo "server: $base"

fail=0
for mount in h264aac live264 live265 cra265 mjpeg; do
    pids=()
    for client in 1 2 3; do
        timeout 30 ffprobe -v error -rtsp_transport tcp \
            -show_entries stream=codec_name,width,height,sample_rate -of compact=p=0 \
            "$base/$mount" >"$work/$mount.$client" 2>&1 &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || fail=1; done
    echo "$mount: $(paste -sd' ' "$work/$mount.1")"
    if ! cmp -s "$work/$mount.1" "$work/$mount.2" || ! cmp -s "$work/$mount.1" "$work/$mount.3"; then
        echo "  clients disagree"
        fail=1
    fi
done

# 20 s of the 8 s file loop: two seams. Timestamps must step by one frame everywhere
# (Matroska keeps milliseconds, hence the tolerance of half a frame).
timeout 60 ffmpeg -v error -rtsp_transport tcp -i "$base/h264aac" -t 20 -c copy -y "$work/loop.mkv"
gaps=$(ffprobe -v error -show_entries packet=stream_index,pts_time -of csv=p=0 "$work/loop.mkv" \
    | awk -F, '{
        frame = ($1 == 0) ? 0.040 : 1024 / 48000   # seconds per video / audio frame
        if (($1 in last) && ($2 - last[$1] > 1.5 * frame || $2 - last[$1] < 0.5 * frame)) n++
        last[$1] = $2
      } END { print n + 0 }')
frames=$(ffprobe -v error -select_streams v -count_packets -show_entries stream=nb_read_packets -of csv=p=0 "$work/loop.mkv")
echo "h264aac loop: $frames video frames in 20 s, $gaps timestamp gaps"
[[ "$gaps" == 0 ]] || fail=1

for mount in live265 cra265; do
    timeout 60 ffmpeg -v error -rtsp_transport tcp -i "$base/$mount" -t 5 -c copy -f hevc -y "$work/$mount.h265"
    echo "$mount: $(/usr/bin/python3 "$support/nal_types.py" --codec h265 "$work/$mount.h265" | tail -1)"
done

if [[ "$fail" != 0 ]]; then echo "FAILED"; cat "$work/server.log"; exit 1; fi
echo "ok"
