#!/usr/bin/env bash
# The tests that boot a real Linux kernel (issue 14: V4L2 cameras from the kernel's vivid driver),
# one after another: every tests/*.rs that uses `common::vm`. Each boots the lab's VM
# (../shared/tools/vm/vm-run, or $VMRUN) with qemu; `cargo test` runs them too, with the rest of
# the suite. Each stays under about 4 minutes on a 2-core machine (software emulation).
#
#   bash tests/support/vm-tests.sh [extra cargo test arguments, e.g. -- --nocapture]
#
# Needs qemu-system-x86, busybox-static and e2fsprogs (`bash .ci/install-test-peers.sh`); the
# first run downloads and caches Debian's kernel package.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

mapfile -t tests < <(grep -l '^use common::vm;' tests/*.rs | xargs -n1 basename | sed 's/\.rs$//' | sort)
[ ${#tests[@]} -gt 0 ] || { echo "vm-tests: no test uses common::vm" >&2; exit 1; }
failed=()
for t in "${tests[@]}"; do
  echo "=== $t"
  start=$(date +%s)
  if cargo test --locked --release --features fault-injection --test "$t" "$@"; then
    echo "=== $t passed in $(($(date +%s) - start)) s"
  else
    echo "=== $t FAILED after $(($(date +%s) - start)) s"
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "vm-tests: failed: ${failed[*]}" >&2
  exit 1
fi
echo "vm-tests: all ${#tests[@]} passed: ${tests[*]}"
