#!/usr/bin/env bash
# Regenerates src/source/demo_clip.mp4, the clip the demo camera replays in a loop
# (embedded with include_bytes!, so keep it small: the target is <= 700 KB).
#
# What is in it, and why:
# - Video: ffmpeg's testsrc2 pattern (moving shapes, so motion and decoding errors
#   are visible) with a burned-in label "edgerec demo  HH:MM:SS.mmm  frame N", so a
#   person looking at a recording or an export can tell which clip position and
#   which loop iteration boundary they are seeing.
#   H.264 Main profile, 640x360, 25 fps, closed GOPs of exactly 25 frames (one IDR
#   per second: -g/-keyint_min 25, no scene-cut key frames), no B-frames, so every
#   second boundary is a clean segment boundary and decode order equals display order.
# - Audio: a 1 kHz tone with a short 4 kHz beep at the start of each second (lavfi
#   sine with beep_factor=4), AAC-LC,
#   48 kHz mono 64 kbit/s; the beep lines up with the IDR frames, which makes A/V
#   sync errors audible and measurable.
# - Exactly 8 s, because 8 s is the shortest length that is a whole number of both
#   GOPs (8 x 25 frames) and AAC frames (8 s x 48000 Hz = 384000 = 375 x 1024 samples):
#   replayed in a loop, neither track has a gap or an overlap at the seam. (The file
#   holds 376 AAC packets: the encoder's 1024-sample priming packet comes first and the
#   MP4 edit list skips it; a looping player must skip it too.)
# - -movflags +faststart (moov first), no metadata, bit-exact flags and one encoder
#   thread, so that re-running this script gives the same bytes with the same ffmpeg.
#
# Usage: tests/support/make-demo-clip.sh [OUTPUT]   (default: src/source/demo_clip.mp4)
# Needs: ffmpeg with libx264 and drawtext (Debian: ffmpeg), fonts-dejavu-core.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out="${1:-$repo_root/src/source/demo_clip.mp4}"
font=/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf
max_bytes=$((700 * 1024))

if [[ ! -r "$font" ]]; then
    echo "make-demo-clip: $font is missing (apt-get install fonts-dejavu-core)" >&2
    exit 1
fi

label="edgerec demo  %{pts\\:hms}  frame %{n}"

ffmpeg -hide_banner -nostdin -y -v warning \
    -f lavfi -i "testsrc2=size=640x360:rate=25:duration=8" \
    -f lavfi -i "sine=frequency=1000:beep_factor=4:sample_rate=48000:duration=8" \
    -vf "drawtext=fontfile=$font:fontsize=20:fontcolor=white:box=1:boxcolor=black@0.6:boxborderw=5:x=10:y=h-th-12:text='$label'" \
    -c:v libx264 -profile:v main -pix_fmt yuv420p -preset medium -crf 30 -maxrate 450k -bufsize 900k \
    -g 25 -keyint_min 25 -sc_threshold 0 -bf 0 -threads 1 \
    -c:a aac -b:a 64k -ac 1 -ar 48000 \
    -map_metadata -1 -fflags +bitexact -flags:v +bitexact -flags:a +bitexact \
    -movflags +faststart \
    "$out"

size=$(stat -c %s "$out")
if (( size > max_bytes )); then
    echo "make-demo-clip: $out is $size bytes, over the $max_bytes byte budget" >&2
    exit 1
fi
echo "make-demo-clip: wrote $out ($size bytes)"
