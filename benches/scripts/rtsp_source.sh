# Sourced (not run) by the whole-process benchmark scripts (rtsp_load.sh, live_fanout.sh): the
# release binary, a scratch directory, the 1080p25 clip and the loopback RTSP server that replays
# it, set up the same way for every script so their figures compare.
#
# After `bench_setup NAME`: repo_root, bin, py, work (a scratch directory under target/tmp, removed
# at exit), clip, server_pid and url (the RTSP URL of the clip). The caller's EXIT trap runs
# `bench_cleanup PID...` with the processes it started.

# Sets repo_root, bin, py and work, and checks that the release binary exists.
bench_init() { # NAME
    repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
    # EDGEREC_BIN: a copy of the release binary to measure while target/ is being rebuilt.
    bin="${EDGEREC_BIN:-$repo_root/target/release/edgerec}"
    py=/usr/bin/python3
    if [[ ! -x "$bin" ]]; then
        echo "$1: $bin is missing; run cargo build --release --locked" >&2
        exit 1
    fi
    mkdir -p "$repo_root/target/tmp"
    work="$(mktemp -d "$repo_root/target/tmp/$1.XXXXXX")"
}

# For the EXIT trap: on failure the last lines of every log, then the given processes are killed
# and the scratch directory removed.
bench_cleanup() { # PID...
    local rc=$?
    if [[ $rc -ne 0 ]]; then
        for log in "$work"/*.log; do
            [[ -s "$log" ]] && { echo "--- $log (last lines)" >&2; tail -n 20 "$log" >&2; }
        done
    fi
    for p in "$@"; do
        kill "$p" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$work"
}

# The clip: 8 s (a whole number of 25-frame GOPs and of 1024-sample AAC frames, so the server's
# loop is seamless), 1080p25, one IDR per second, no B-frames (edgerec records none), temporal
# noise so that x264 really spends about 4 Mbit/s instead of compressing a test pattern to nothing.
# Made once with ffmpeg (libx264) and kept in target/tmp. Sets clip.
# GOP_SEC (default 1; 1, 2, 4 or 8: the 8 s loop must hold whole GOPs) sets the IDR interval of
# both clips; issue 14's own baseline was measured with 2 s GOPs, a common camera default.
gop_sec="${GOP_SEC:-1}"
case "$gop_sec" in
1) gop_suffix="" ;;
2 | 4 | 8) gop_suffix="-gop${gop_sec}s" ;;
*)
    echo "GOP_SEC must be 1, 2, 4 or 8 (whole GOPs in the 8 s loop), not $gop_sec" >&2
    exit 2
    ;;
esac
gop_frames=$((gop_sec * 25))
bench_clip() {
    clip="$repo_root/target/tmp/bench-1080p25-4mbit$gop_suffix.mp4"
    if [[ ! -s "$clip" ]]; then
        ffmpeg -v error -y -f lavfi -i "testsrc2=size=1920x1080:rate=25" \
            -f lavfi -i "sine=frequency=1000:sample_rate=48000" -t 8 -map 0:v -map 1:a \
            -vf "noise=alls=12:allf=t" -c:v libx264 -preset veryfast -bf 0 -g $gop_frames -keyint_min $gop_frames \
            -sc_threshold 0 -b:v 4000k -maxrate 4000k -bufsize 4000k -pix_fmt yuv420p \
            -c:a aac -b:a 64k -ac 1 -movflags +faststart "$clip.partial.mp4"
        mv "$clip.partial.mp4" "$clip"
    fi
}

# The second stream of the same scene (issue 14, DEV-5): 640x360 at 25 fps, one IDR per second,
# about 500 kbit/s, made from the same source and noise as the main clip so that both carry the
# same picture. Made once and kept in target/tmp. Sets sub_clip.
bench_sub_clip() {
    sub_clip="$repo_root/target/tmp/bench-360p25-500kbit$gop_suffix.mp4"
    if [[ ! -s "$sub_clip" ]]; then
        ffmpeg -v error -y -f lavfi -i "testsrc2=size=1920x1080:rate=25" \
            -f lavfi -i "sine=frequency=1000:sample_rate=48000" -t 8 -map 0:v -map 1:a \
            -vf "noise=alls=12:allf=t,scale=640:360" -c:v libx264 -preset veryfast -bf 0 -g $gop_frames \
            -keyint_min $gop_frames -sc_threshold 0 -b:v 500k -maxrate 500k -bufsize 500k -pix_fmt yuv420p \
            -c:a aac -b:a 64k -ac 1 -movflags +faststart "$sub_clip.partial.mp4"
        mv "$sub_clip.partial.mp4" "$sub_clip"
    fi
}

# A TCP port on 127.0.0.1 that was free a moment ago.
free_port() {
    "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Serves the clip from tests/support/rtsp_server.py as ONE shared file mount, replayed byte for
# byte, so the server never encodes and every client is sent the same packets at the same time.
# The server exits when fd 9 (its standard input) closes, so it cannot outlive the script; the
# processes the script starts get `9>&-`. Sets server_pid and url; with sub_clip set (bench_sub_clip),
# also sub_url, a second shared mount replaying it.
bench_rtsp_server() { # NAME
    mkfifo "$work/ready" "$work/server-stdin"
    local mounts=(--mount "/cam=file:$clip")
    if [[ -n "${sub_clip:-}" ]]; then
        mounts+=(--mount "/sub=file:$sub_clip")
    fi
    "$py" "$repo_root/tests/support/rtsp_server.py" --port 0 --exit-on-stdin-eof \
        "${mounts[@]}" <"$work/server-stdin" >"$work/ready" 2>"$work/server.log" &
    server_pid=$!
    exec 9>"$work/server-stdin"
    local word base
    read -r -t 60 word base <"$work/ready" || true
    if [[ "${word:-}" != READY ]]; then
        echo "$1: the RTSP server did not start" >&2
        cat "$work/server.log" >&2
        exit 1
    fi
    url="$base/cam"
    sub_url="$base/sub"
}
