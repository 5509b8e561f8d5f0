#!/usr/bin/env bash
# Real power-cut test of edgerec: record in a VM, SIGKILL qemu at a random moment, boot again
# on the same disk, recover, and check that everything older than the sync interval survived.
#
# Usage (from the project root):  tests/powercut/run.sh [N]      N trials, default 3
#
# Needs ../shared/tools/vm/vm-run (qemu-system-x86, busybox-static; first run downloads a kernel),
# mkfs.ext4/e2fsck (e2fsprogs), jq, cargo. Exit 0 when every trial passes, 1 when one fails,
# 2 when the host is not set up.
#
# Each trial:
#   1. fresh 448 MiB raw image (the 64 MiB storage and ST-5's 250 MB free), mkfs.ext4 on the host;
#   2. boot 1 (payload `record`): mount, `edgerec run` with the demo camera; once the first chunks
#      are durable the guest prints `TICK <guest unix ms>` (and a STATUS line) every second;
#      vm-run SIGKILLs qemu KILL_DELAY ms (random) after the first TICK: the guest loses its RAM,
#      page cache included (disk cache mode: CACHE_MODE, default none = vm-run's default);
#   3. host: e2fsck -fy on a *copy* of the image (reported only);
#   4. boot 2 (payload `verify`) on the original image: mount (kernel journal replay),
#      `edgerec check` (reported), `edgerec run` (recovery + a few s of new recording),
#      recordings via the HTTP API, clean stop, `edgerec check`, umount; /out comes back;
#   5. host: e2fsck -fn on the image must be clean; judge the trial.
#
# A trial PASSES when
#   (a) end of the last pre-cut recording >= last TICK seen before the cut - sync_interval - SLACK_MS
#       (the requirement: frames received more than sync_interval (+ fdatasync latency) before the
#       cut are recovered. The last TICK was printed <= the cut and at most ~1 s before it, so
#       last_tick <= cut and the asserted bound is never stricter than the requirement; SLACK_MS
#       (default 1000) absorbs fdatasync latency under emulation, the 40 ms frame spacing and the
#       writer's tick phase. See BENCHMARKS-powercut.md.)
#   (b) end of the last pre-cut recording >= the end of the newest recording the recorder's own
#       API listed at the last STATUS line before the cut (listed = indexed = fdatasync'ed first);
#   (c) `edgerec check` exits 0 after recovery, boot 2 completed, and e2fsck -fn is clean.
#
# Archive mode (issue 13: "a power cut during an archive round neither loses nor duplicates
# data"): ARCHIVE=1 adds an archive stage on the same disk (`[[storage.archive]]` at /mnt/data/nas),
# and boot 1 seeds the ring with SEED_HOURS finished past hours of SEED_FRAMES 20 kB frames each
# (examples/powercut_archive.rs, through the store's own writer) before edgerec starts, so the
# round at start is copying when the power is cut. Boot 2 lets the round finish, and the trial
# also needs (d) `powercut_archive verify` to pass: every seeded chunk in the stage index exactly
# once, no seq twice, every slice directory reads back with good CRCs and holds what the index
# names, no `.partial`/`.trash` left. The table says how many slices were published at the last
# TICK before the cut (fewer than SEED_HOURS: the cut hit the round). Defaults in archive mode:
# SEED_HOURS=72, SEED_FRAMES=100 (2 MB per hour), STORAGE_SIZE=256MiB, KILL_DELAY=0-4000, a
# 1024 MiB disk.
#
# Environment: KILL_DELAY (ms or MIN-MAX, default 3000-9000), CACHE_MODE (default none),
# SLACK_MS (1000), SYNC_MS / SEGMENT_SIZE / STORAGE_SIZE (override the payload config),
# EDGEREC_BIN (skip the cargo build), RESULTS (default target/powercut/<timestamp>), VMRUN.
# Results: RESULTS/summary.txt (table), trials.tsv, trial-N/ (consoles with host arrival times in
# µs, fsck output, the guest's /out); the disk images of failed trials are kept there too.
set -uo pipefail

cd "$(dirname "$0")/../.." || exit 2
ROOT=$(pwd)
HERE=$ROOT/tests/powercut
N=${1:-3}
ARCHIVE=${ARCHIVE:-0}
if [ "$ARCHIVE" = 1 ]; then
  KILL_DELAY=${KILL_DELAY:-0-4000}
  STORAGE_SIZE=${STORAGE_SIZE:-256MiB}
  SEED_HOURS=${SEED_HOURS:-72}
  SEED_FRAMES=${SEED_FRAMES:-100}
fi
KILL_DELAY=${KILL_DELAY:-3000-9000}
CACHE_MODE=${CACHE_MODE:-none}
SLACK_MS=${SLACK_MS:-1000}
DISK_MB=448
[ "$ARCHIVE" = 1 ] && DISK_MB=1024
VMRUN=${VMRUN:-$ROOT/../shared/tools/vm/vm-run}
RESULTS=${RESULTS:-$ROOT/target/powercut/$(date -u +%Y%m%dT%H%M%SZ)}

die() { echo "powercut: $*" >&2; exit 2; }
[[ "$N" =~ ^[1-9][0-9]*$ ]] || die "usage: tests/powercut/run.sh [N]   (N = number of trials)"
[ -x "$VMRUN" ] || die "needs $VMRUN (../shared/tools/vm/vm-run next to the project)"
for t in qemu-system-x86_64 mkfs.ext4 e2fsck jq; do
  command -v "$t" >/dev/null || die "$t not found (apt-get install -y --no-install-recommends qemu-system-x86 busybox-static e2fsprogs jq)"
done
[ -n "${EPOCHREALTIME:-}" ] || die "needs bash >= 5 (EPOCHREALTIME)"

# ------------------------------------------------------------------ binary and payload
if [ -n "${EDGEREC_BIN:-}" ]; then
  BIN=$EDGEREC_BIN
else
  echo "powercut: cargo build --release --locked (waits if another build holds the lock)"
  cargo build --release --locked || die "cargo build failed"
  BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/edgerec
fi
[ -x "$BIN" ] || die "no edgerec binary at $BIN"

mkdir -p "$RESULTS" || die "cannot create $RESULTS"
RESULTS=$(cd "$RESULTS" && pwd)
W=$(mktemp -d "${TMPDIR:-/tmp}/edgerec-powercut.XXXXXX")
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/payload"
cp "$HERE/payload/run.sh" "$HERE/payload/edgerec.toml" "$W/payload/"
cp "$BIN" "$W/payload/edgerec"
CFG=$W/payload/edgerec.toml
[ -n "${SYNC_MS:-}" ] && sed -i "s/^sync_interval_ms = .*/sync_interval_ms = $SYNC_MS/" "$CFG"
[ -n "${SEGMENT_SIZE:-}" ] && sed -i "s/^segment_size = .*/segment_size = \"$SEGMENT_SIZE\"/" "$CFG"
[ -n "${STORAGE_SIZE:-}" ] && sed -i "s/^size = .*/size = \"$STORAGE_SIZE\"/" "$CFG"
if [ "$ARCHIVE" = 1 ]; then
  cargo build --release --locked --example powercut_archive || die "cargo build --example powercut_archive failed"
  cp "${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/powercut_archive" "$W/payload/powercut-archive" \
    || die "no powercut_archive example binary"
  # Bytes as the config's units say (MiB only: the payload config and the defaults use MiB).
  mib() { case "$1" in *MiB) echo $(( ${1%MiB} * 1048576 )) ;; *) die "size $1: only MiB sizes in archive mode" ;; esac; }
  size_now=$(sed -n 's/^size = "\(.*\)"/\1/p' "$CFG"); seg_now=$(sed -n 's/^segment_size = "\(.*\)"/\1/p' "$CFG")
  cat > "$W/payload/archive.env" <<ENV
SEED_HOURS=$SEED_HOURS
SEED_FRAMES=$SEED_FRAMES
SEED_STORAGE_BYTES=$(mib "$size_now")
SEED_SEGMENT_BYTES=$(mib "$seg_now")
ENV
  # The ring keeps a week; the stage a month, on the same disk (AR-2: strictly longer).
  sed -i 's/^sync_interval_ms = \(.*\)/sync_interval_ms = \1\nretention_days = 7/' "$CFG"
  cat >> "$CFG" <<'TOML'

# Archive mode of tests/powercut/run.sh: one stage on the same disk.
[[storage.archive]]
name = "nas"
path = "/mnt/data/nas"
retention_days = 30
max_size = "512MiB"
schedule = "hourly"
# A directory on the test disk, not a mount point of its own.
mount = false
TOML
fi
SYNC=$(sed -n 's/^sync_interval_ms = \([0-9]*\).*/\1/p' "$CFG")
[ -n "$SYNC" ] || die "sync_interval_ms not found in $CFG"
cp "$CFG" "$RESULTS/edgerec.toml"

hi=${KILL_DELAY#*-}
BOOT1_TIMEOUT=$((180 + hi / 1000))
BOOT2_TIMEOUT=300; [ "$ARCHIVE" = 1 ] && BOOT1_TIMEOUT=$((BOOT1_TIMEOUT + 300)) && BOOT2_TIMEOUT=600

# Prefixes every line with the host's arrival time in µs (bash 5 EPOCHREALTIME, no fork).
stamp() { local l; while IFS= read -r l; do printf '%s %s\n' "${EPOCHREALTIME/./}" "$l"; done; }
# RFC 3339 UTC (as edgerec prints it) to unix ms.
# shellcheck disable=SC2016  # jq program, not shell
JQ_MS='def ms: capture("^(?<s>[^.Z]+)(\\.(?<f>[0-9]+))?Z$") as $c
  | (($c.s + "Z") | fromdateiso8601) * 1000 + ((($c.f // "") + "000")[0:3] | tonumber);'
rfc_ms() { [ -n "$1" ] && [ "$1" != null ] && jq -nr --arg t "$1" "$JQ_MS \$t | ms" 2>/dev/null; }
hms() { [ -n "$1" ] && date -u -d "@$(($1 / 1000))" "+%H:%M:%S.$(printf %03d $(($1 % 1000)))" || echo "-"; }

{
  echo "edgerec power-cut test: $N trial(s), kill delay $KILL_DELAY ms after the first TICK, cache=$CACHE_MODE"
  [ "$ARCHIVE" = 1 ] && echo "archive mode: $SEED_HOURS seeded hours of $SEED_FRAMES frames, stage /mnt/data/nas"
  echo "sync_interval_ms=$SYNC slack_ms=$SLACK_MS disk=${DISK_MB}MiB ext4  results: $RESULTS"
  echo "binary: $BIN ($(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown))"
  echo "host: nproc=$(nproc) kernel=$(uname -r) $(qemu-system-x86_64 --version | head -1)"
} | tee "$RESULTS/summary.txt"

printf 'trial\tkill_delay_ms\tfirst_tick_ms\tlast_tick_ms\tclaimed_durable_ms\trecovered_end_ms\tgap_ms\tbound_gap_ms\test_loss_ms\tcheck_before\tunindexed_tail\tcheck_after\tpost_runs\tcanary\tfsck_copy\tfsck_after\tresult\treasons\n' > "$RESULTS/trials.tsv"

fails=0
for i in $(seq 1 "$N"); do
  T=$RESULTS/trial-$i
  mkdir -p "$T"
  img=$W/disk.img
  rm -f "$img" "$img.fsck"
  truncate -s ${DISK_MB}M "$img"
  mkfs.ext4 -q -F "$img" || die "mkfs.ext4 failed"
  echo "--- trial $i/$N: boot 1 (record, power cut $KILL_DELAY ms after the first TICK)"

  "$VMRUN" --no-vivid --quiet-boot --timeout "$BOOT1_TIMEOUT" --disk "$img,cache=$CACHE_MODE" \
    --kill-after-line '^TICK ' --kill-delay-ms "$KILL_DELAY" "$W/payload" -- record 2>&1 | stamp > "$T/boot1.console"
  rc1=${PIPESTATUS[0]}

  # The cut: vm-run notes the delay it drew when the first TICK arrived; the cut is that much later.
  note=$(grep -m1 'vm-run: power cut (SIGKILL qemu)' "$T/boot1.console")
  delay=$(sed -n 's/.*power cut (SIGKILL qemu) \([0-9]*\)ms after.*/\1/p' <<<"$note")
  cut_host_us=""; [ -n "$delay" ] && cut_host_us=$(( ${note%% *} + delay * 1000 ))
  first_tick=$(awk '$2 == "TICK" {print $3; exit}' "$T/boot1.console")
  last_line=$(awk '$2 == "TICK" {l = $0} END {print l}' "$T/boot1.console")
  last_tick=$(awk '{print $3}' <<<"$last_line"); last_tick_host_us=$(awk '{print $1}' <<<"$last_line")
  # What the recorder's API listed as recorded (indexed, hence fdatasync'ed) at the last STATUS.
  claimed=$(rfc_ms "$(awk '$2 == "STATUS" {for (k = 3; k <= NF; k++) if ($k ~ /^video_end=/) v = substr($k, 11)} END {print v}' "$T/boot1.console")")
  # Guest time of the cut, estimated: last TICK + host time from its arrival to the SIGKILL
  # (same clock rate assumed; console latency ignored). Informational only.
  est_cut=""; [ -n "$cut_host_us" ] && [ -n "$last_tick" ] && est_cut=$(( last_tick + (cut_host_us - last_tick_host_us) / 1000 ))

  cp --sparse=always "$img" "$W/cut.img"     # kept in the results if the trial fails
  cp --sparse=always "$img" "$img.fsck"
  e2fsck -fy "$img.fsck" > "$T/fsck-copy.txt" 2>&1; fsck_copy=$?
  rm -f "$img.fsck"

  echo "--- trial $i/$N: boot 2 (verify: mount, check, recover, check)"
  "$VMRUN" --no-vivid --quiet-boot --timeout "$BOOT2_TIMEOUT" --disk "$img,cache=$CACHE_MODE" --out "$T/out" \
    "$W/payload" -- verify 2>&1 | stamp > "$T/boot2.console"
  rc2=${PIPESTATUS[0]}
  e2fsck -fn "$img" > "$T/fsck-after.txt" 2>&1; fsck_after=$?

  cb=$(sed -n 's/^[0-9]* CHECK_BEFORE rc=\([0-9]*\).*/\1/p' "$T/boot2.console")
  ca=$(sed -n 's/^[0-9]* CHECK_AFTER rc=\([0-9]*\).*/\1/p' "$T/boot2.console")
  tail_chunks=$(grep -o '[0-9]* unindexed tail chunks' "$T/out/check-before.txt" 2>/dev/null | awk '{print $1}')
  ticks=$(awk '$2 == "TICK"' "$T/boot1.console" | wc -l)
  canary=$(sed -n 's/^[0-9]* CANARY lines=\([0-9]*\).* nul_bytes=\([0-9]*\).*/\1\/'"$ticks"' lines, \2 NUL bytes/p' "$T/boot2.console")
  t0=$(cat "$T/out/boot2_t0" 2>/dev/null)
  end=""; post_runs=""
  if [ -s "$T/out/recordings.json" ] && [ -n "$t0" ]; then
    # Pre-cut runs started before boot 2's edgerec did; the recovered end is the latest of their ends.
    end=$(jq -r --argjson t0 "$t0" "$JQ_MS [.recordings[] | select((.start | ms) < \$t0) | (.end | ms)] | max // empty" "$T/out/recordings.json")
    post_runs=$(jq -r --argjson t0 "$t0" "$JQ_MS [.recordings[] | select((.start | ms) >= \$t0)] | length" "$T/out/recordings.json")
  fi

  gap=""; loss=""; reasons=()
  bound=$((SYNC + SLACK_MS))
  [ "$rc1" = 0 ] && [ -n "$delay" ] || reasons+=("boot1 rc=$rc1 (no power cut)")
  [ -n "$last_tick" ] || reasons+=("no TICK before the cut")
  [ "$rc2" = 0 ] || reasons+=("boot2 rc=$rc2")
  if [ -n "$end" ] && [ -n "$last_tick" ]; then
    gap=$((last_tick - end))
    [ "$gap" -le "$bound" ] || reasons+=("gap ${gap}ms > ${bound}ms")
    [ -z "$claimed" ] || [ "$end" -ge "$claimed" ] || reasons+=("lost data reported durable (end $end < newest $claimed)")
    [ -z "$est_cut" ] || loss=$((est_cut - end))
  else
    reasons+=("no pre-cut recording found")
  fi
  [ "$ca" = 0 ] || reasons+=("check after recovery rc=${ca:-none}")
  [ "$fsck_after" = 0 ] || reasons+=("e2fsck -fn after boot 2 rc=$fsck_after")
  arch="-"
  if [ "$ARCHIVE" = 1 ]; then
    av=$(sed -n 's/^[0-9]* ARCHIVE_VERIFY rc=\([0-9]*\).*/\1/p' "$T/boot2.console")
    at_cut=$(awk '$2 == "ARCHIVE" {v = $3} END {sub("slices=", "", v); print v}' "$T/boot1.console")
    done_line=$(sed -n 's/^[0-9]* \(ARCHIVE_DONE.*\|ARCHIVE_NEVER_DONE.*\)/\1/p' "$T/boot2.console")
    [ "$av" = 0 ] || reasons+=("archive verify rc=${av:-none}: $(grep -m3 'VERIFY PROBLEM' "$T/out/archive-verify.txt" 2>/dev/null | tr '\n' ' ')")
    mid="not known: no ARCHIVE line before the cut"
    [ -n "$at_cut" ] && mid="after the round" && [ "$at_cut" -lt "$SEED_HOURS" ] && mid="mid-round"
    arch="${at_cut:-?}/$SEED_HOURS slices at last TICK ($mid); ${done_line:-no ARCHIVE_DONE}; verify rc=${av:-?}"
    echo "$arch" > "$T/archive.txt"
  fi
  if [ ${#reasons[@]} = 0 ]; then result=PASS; else
    result=FAIL; fails=$((fails + 1))
    mv "$W/cut.img" "$T/disk-after-cut.img"; cp --sparse=always "$img" "$T/disk-after-boot2.img"
  fi
  rm -f "$W/cut.img"
  why=$(IFS=';'; echo "${reasons[*]:-}")
  printf '%s\t' "$i" "${delay:--}" "${first_tick:--}" "${last_tick:--}" "${claimed:--}" "${end:--}" "${gap:--}" \
    "$bound" "${loss:--}" "${cb:--}" "${tail_chunks:--}" "${ca:--}" "${post_runs:--}" "${canary:--}" "$fsck_copy" \
    "$fsck_after" "$result" >> "$RESULTS/trials.tsv"
  printf '%s\n' "${why:--}" >> "$RESULTS/trials.tsv"
  kept="-"; [ -n "$claimed" ] && [ -n "$end" ] && { [ "$end" -ge "$claimed" ] && kept="yes (+$((end - claimed)) ms)" || kept="NO"; }
  echo "| $i | ${delay:-?} ms | $(hms "$last_tick") | $(hms "$end") | ${gap:-?} ms | ≤ $bound ms | ${loss:-?} ms | $kept | rc=${cb:-?} (${tail_chunks:-?}) | rc=${ca:-?} | ${post_runs:-?} | ${canary:-?} | copy=$fsck_copy after=$fsck_after | $arch | $result${why:+ ($why)} |" >> "$W/rows.md"
  echo "--- trial $i/$N: $result kill_delay=${delay:-?}ms last_tick=$(hms "$last_tick") recovered_end=$(hms "$end") gap=${gap:-?}ms (bound ${bound}ms) est_loss=${loss:-?}ms check_before=${cb:-?} check_after=${ca:-?} ${why}"
done

{
  echo
  echo "| trial | kill delay | last TICK (guest UTC) | recovered end | gap = tick - end | bound | est. loss at cut | ≥ API end at last STATUS | check before (tail chunks) | check after | runs after recovery | unsynced canary kept | e2fsck (rc) | archive (ARCHIVE=1) | result |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  cat "$W/rows.md" 2>/dev/null
  echo
  echo "trials=$N failures=$fails"
} | tee -a "$RESULTS/summary.txt"
[ "$fails" = 0 ] || exit 1
exit 0
