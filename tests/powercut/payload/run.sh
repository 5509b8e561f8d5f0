#!/bin/sh
# Guest side of the edgerec power-cut test (busybox sh, cwd /payload, run by vm-run).
# tests/powercut/run.sh stages this directory together with the edgerec binary.
#
#   run.sh record   boot 1: mount the test disk, start `edgerec run`, and once recording is
#                   durable print one line per second:
#                       TICK <guest unix ms>
#                       STATUS at=<ms> frames=<n> newest=<storage newest> video_end=<last recording end>
#                   until the host SIGKILLs qemu (the power cut).
#   run.sh verify   boot 2 after the cut: mount (the kernel replays the ext4 journal),
#                   `edgerec check` (before recovery), `edgerec run` (recovers the tail, records
#                   a few more seconds), recordings + status to /out, clean stop,
#                   `edgerec check` again, unmount. The host judges the results.
#
# Archive mode (issue 13; `ARCHIVE=1 tests/powercut/run.sh`): when ./archive.env exists, boot 1
# first seeds the ring with finished past hours (./powercut-archive seed; edgerec's config has an
# archive stage at $NAS) so the round at start copies while the power is cut; every TICK also
# prints `ARCHIVE slices=<slice directories in the stage>`. Boot 2 waits until the stage index
# names every seeded chunk, stops edgerec and runs ./powercut-archive verify (ARCHIVE_VERIFY rc=).
#
# Exit codes (infrastructure only; the verdict is the host's): 10 mount failed, 11 the HTTP API
# never came up, 12 recording never became durable, 13 edgerec did not stop, 14 seeding failed.

CFG=./edgerec.toml
# No default password (A1): the payload creates its own administrator before the first start.
ADMIN_PASSWORD=Powercut-admin-1
API=http://admin:$ADMIN_PASSWORD@127.0.0.1:8080
MNT=/mnt/data
NAS=$MNT/nas
STAGE_DIR=$NAS/main
SEQS=$MNT/seeded-seqs.txt
ARCHIVE=0
if [ -f ./archive.env ]; then
  . ./archive.env
  ARCHIVE=1
fi

# Guest CLOCK_REALTIME in ms (busybox date has no %N; adjtimex prints tv_sec and tv_usec).
now_ms() {
  adjtimex | awk '/tv_sec/ {s = $2} /tv_usec/ {u = $2} END {printf "%s%03d\n", s, int(u / 1000)}'
}

# A value of the pretty-printed status JSON: `"key": value` (strings unquoted, null as null).
json_field() {
  sed -n "s/^ *\"$1\": \"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}\$/\1/p" | head -1
}

status() { timeout 10 wget -q -O - "$API/api/v1/status" 2>/dev/null; }

# The demo camera's recordings within a day of the given unix ms (JSON on stdout).
recordings() {
  from=$(date -u -d "@$(($1 / 1000 - 86400))" +%Y-%m-%dT%H:%M:%SZ)
  to=$(date -u -d "@$(($1 / 1000 + 86400))" +%Y-%m-%dT%H:%M:%SZ)
  timeout 20 wget -q -O - "$API/api/v1/cameras/demo/recordings?from=$from&to=$to" 2>/dev/null
}

mount_disk() {
  mkdir -p "$MNT"
  mount -t ext4 /dev/disk/d0 "$MNT" || { echo "MOUNT_FAILED"; exit 10; }
  echo "MOUNTED $(grep " $MNT " /proc/mounts)"
}

# Starts `edgerec run` with its log on the console (prefixed) and, if given, in a file.
start_edgerec() {
  logfile=${1:-/dev/null}
  echo "$ADMIN_PASSWORD" | ./edgerec user add --config "$CFG" --admin admin 2>&1 | grep -v "exists already" || true
  rm -f /tmp/edgerec.fifo
  mkfifo /tmp/edgerec.fifo
  (while IFS= read -r l; do echo "edgerec| $l"; echo "$l" >> "$logfile"; done) < /tmp/edgerec.fifo &
  ./edgerec run --config "$CFG" > /tmp/edgerec.fifo 2>&1 &
  EDGEREC_PID=$!
  i=0
  until timeout 10 wget -q -O /dev/null "$API/healthz" 2>/dev/null; do
    i=$((i + 1))
    if [ $i -gt 180 ] || ! kill -0 "$EDGEREC_PID" 2>/dev/null; then echo "API_NEVER_UP"; exit 11; fi
    sleep 1
  done
  echo "API_UP pid=$EDGEREC_PID"
}

stop_edgerec() {
  kill -TERM "$EDGEREC_PID"
  i=0
  while kill -0 "$EDGEREC_PID" 2>/dev/null; do
    i=$((i + 1))
    if [ $i -gt 60 ]; then echo "EDGEREC_DID_NOT_STOP"; kill -KILL "$EDGEREC_PID"; exit 13; fi
    sleep 1
  done
  wait "$EDGEREC_PID"
  echo "EDGEREC_STOPPED rc=$?"
}

ip link set lo up

# Slice directories in the stage (names hold " - ", AR-5); 0 before the stage exists.
stage_slices() { ls "$STAGE_DIR" 2>/dev/null | grep -c ' - '; }

case "$1" in
record)
  mount_disk
  if [ $ARCHIVE = 1 ]; then
    mkdir -p "$NAS"
    SEED_STORAGE_BYTES=$SEED_STORAGE_BYTES SEED_SEGMENT_BYTES=$SEED_SEGMENT_BYTES \
      ./powercut-archive seed "$MNT" "$MNT/storage-main" "$SEED_HOURS" "$SEED_FRAMES" "$SEQS" || { echo "SEED_FAILED"; exit 14; }
  fi
  start_edgerec
  # Ticks start once the first chunks are fdatasync'ed and indexed (newest_recording set).
  i=0
  while :; do
    newest=$(status | json_field newest_recording)
    [ -n "$newest" ] && [ "$newest" != null ] && break
    i=$((i + 1))
    if [ $i -gt 120 ]; then echo "NEVER_DURABLE"; exit 12; fi
    sleep 1
  done
  echo "RECORDING newest=$newest"
  next=$(now_ms)
  n=0
  while :; do
    t=$(now_ms)
    echo "TICK $t"
    [ $ARCHIVE = 1 ] && echo "ARCHIVE slices=$(stage_slices)"
    # Canary: appended without fsync. After the cut it shows how much unflushed page cache died.
    echo "$t" >> "$MNT/canary-nosync.txt"
    s=$(status)
    # video_end: end of the newest video recording the API lists. The API only lists indexed
    # chunks and chunks are indexed only after their fdatasync, so this is what the recorder
    # claims is durable (storage newest_recording also counts audio chunks).
    v=$(recordings "$t" | sed -n 's/^ *"end": "\([^"]*\)".*/\1/p' | tail -n 1)
    echo "STATUS at=$t frames=$(echo "$s" | json_field frames_received) newest=$(echo "$s" | json_field newest_recording) video_end=$v"
    n=$((n + 1))
    next=$((next + 1000))
    d=$((next - $(now_ms)))
    [ $d -gt 0 ] && usleep $((d * 1000))
  done
  ;;
verify)
  mount_disk
  dmesg | grep -i 'EXT4-fs' | sed 's/^/KERNEL| /'
  mkdir -p /out
  c="$MNT/canary-nosync.txt"
  if [ -f "$c" ]; then
    echo "CANARY lines=$(grep -a -c '^[0-9]\{13\}$' "$c") last=$(grep -a '^[0-9]\{13\}$' "$c" | tail -n 1) bytes=$(wc -c < "$c") nul_bytes=$(($(wc -c < "$c") - $(tr -d '\000' < "$c" | wc -c)))"
  else
    echo "CANARY lines=0 last= bytes=0 nul_bytes=0 (file lost)"
  fi
  ./edgerec check --config "$CFG" > /out/check-before.txt 2>&1
  echo "CHECK_BEFORE rc=$?"
  sed 's/^/check-before| /' /out/check-before.txt
  t0=$(now_ms)
  echo "BOOT2_T0 $t0"
  start_edgerec /out/edgerec-boot2.log
  # Let the recorder resume: a few fdatasync ticks after recovery.
  i=0
  while :; do
    f=$(status | json_field fsyncs)
    [ -n "$f" ] && [ "$f" -ge 3 ] 2>/dev/null && break
    i=$((i + 1))
    if [ $i -gt 120 ]; then echo "NEVER_DURABLE"; break; fi
    sleep 1
  done
  status > /out/status.json
  recordings "$t0" > /out/recordings.json
  echo "RECORDINGS rc=$? $(tr -d ' \n' < /out/recordings.json)"
  if [ $ARCHIVE = 1 ]; then
    # The next round (the one at start) finishes what the cut interrupted.
    want=$(wc -l < "$SEQS")
    i=0
    while :; do
      have=$(./powercut-archive count "$STAGE_DIR" "$SEQS" 2>/dev/null)
      [ "$have" = "$want" ] && break
      i=$((i + 1))
      if [ $i -gt 300 ]; then echo "ARCHIVE_NEVER_DONE have=$have want=$want"; break; fi
      sleep 1
    done
    echo "ARCHIVE_DONE have=$have want=$want after ${i}s"
  fi
  stop_edgerec
  if [ $ARCHIVE = 1 ]; then
    ./powercut-archive verify "$MNT/storage-main" "$STAGE_DIR" "$SEQS" > /out/archive-verify.txt 2>&1
    echo "ARCHIVE_VERIFY rc=$?"
    sed 's/^/archive-verify| /' /out/archive-verify.txt
  fi
  ./edgerec check --config "$CFG" > /out/check-after.txt 2>&1
  echo "CHECK_AFTER rc=$?"
  sed 's/^/check-after| /' /out/check-after.txt
  echo "$t0" > /out/boot2_t0
  sync
  umount "$MNT"
  echo "UMOUNT rc=$?"
  exit 0
  ;;
*)
  echo "usage: run.sh record|verify" >&2
  exit 2
  ;;
esac
