#!/usr/bin/env bash
# The test suite, as the README and CI run it: installs the test peers (ffmpeg,
# GStreamer's RTSP server, ...) with apt if any is missing, then runs every test
# in release mode, so crash and recording tests see realistic timing, with the
# `fault-injection` feature (the test hooks of `edgerec::fault`, which production
# builds never have; the tests that use them require it).
#
#   bash tests/support/run-tests.sh [extra cargo test arguments]
#
# On a 2-core machine a clean release build takes about 6 minutes; CI's limit
# for all of .ci/run is 90 minutes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

bash .ci/install-test-peers.sh
cargo test --locked --release --features fault-injection --no-fail-fast "$@"
