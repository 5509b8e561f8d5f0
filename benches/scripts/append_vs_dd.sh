#!/usr/bin/env bash
# The `dd` reference for the store append benchmark: a sequential write of N MiB with one
# fdatasync at the end, on the filesystem of the target directory (where `cargo bench` puts the
# benchmark storage), plus the machine facts BENCHMARKS.md records with every figure.
#
# Usage: benches/scripts/append_vs_dd.sh [MiB]   (default 1024; needs that much free space)
set -euo pipefail

mib="${1:-1024}"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dir="$repo_root/target/tmp"
mkdir -p "$dir"
file="$(mktemp "$dir/dd-append.XXXXXX")"
trap 'rm -f "$file"' EXIT

echo "machine: nproc=$(nproc), cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), kernel=$(uname -r)"
echo "filesystem of $dir: $(df -T "$dir" | awk 'NR==2 {print $2 " on " $1}')"
for run in 1 2 3; do
    # dd reports on stderr; keep its last line (bytes, seconds, rate).
    rate="$(dd if=/dev/zero of="$file" bs=1M count="$mib" conv=fdatasync 2>&1 | tail -n 1)"
    echo "dd run $run: $rate"
    rm -f "$file"
done
