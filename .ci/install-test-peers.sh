#!/usr/bin/env bash
# Installs the programs edgerec's tests run against, with apt, if they are missing.
# Idempotent: when everything is installed it changes nothing and touches no network.
#
#   bash .ci/install-test-peers.sh          # test peers, build tools and the VM's host tools
#   bash .ci/install-test-peers.sh --vm     # the same (kept for older callers)
#
# What and why:
#   ffmpeg                         make clips; ffprobe and decode exports
#   python3-gi, gir1.2-gst-rtsp-server-1.0, gstreamer1.0-tools,
#   gstreamer1.0-plugins-{base,good,bad,ugly}
#                                  tests/support/rtsp_server.py, a real RTSP server
#                                  (x264enc: ugly; x265enc, voaacenc: bad; so gstreamer1.0-libav
#                                  is not needed: voaacenc encodes the AAC)
#   gstreamer1.0-x                 clockoverlay (its pango plugin): the test camera's burnt-in clock
#   libclang-dev                   bindgen, for the v4l crate's V4L2 bindings (src/source/v4l2.rs)
#   qemu-system-x86, busybox-static
#                                  ../shared/tools/vm/vm-run boots a kernel with vivid V4L2 devices
#                                  for tests/v4l2_vm.rs (issue 14: a real kernel, real devices)
#   nasm                           SIMD in openh264's bundled build once it is used
#   systemd                        systemd-analyze for the unit checks
#   strace                         tests/systemd_unit.rs traces the calls the binary makes and
#                                  checks them against the unit's SystemCallFilter= (it also uses
#                                  util-linux's setpriv and unshare, and root for the /proc mount)
#   python3-venv                   a virtualenv for schemathesis (PyPI, pinned below): fuzzes the
#                                  API from its OpenAPI document (tests/fuzz_api.rs)
#   curl, openssl                  real HTTPS clients for tests/tls.rs (TLS 1.3/1.2, TLS 1.1 refusal,
#                                  served certificate) and openssl to make test certificates
#   prometheus                     promtool check metrics: Prometheus' own parser and linter for
#                                  tests/metrics.rs (Debian ships promtool only in this package; on a
#                                  host with systemd it also enables a Prometheus server on :9090)
#   poppler-utils                  pdftotext reads the incident report (a PDF) back in the tests of
#                                  src/incident/report.rs (issue 15, IM-8)
#   iproute2                       `ip netns` and veth links: tests/pull_net.rs cuts the link between
#                                  a remote and a central in two network namespaces (issue 16)
#   unzip                          opens and tests the incident export archive (tests/incidents.rs,
#                                  issue 15, IM-9)
#   chromium, chromium-driver      the web interface's tests drive Debian's headless Chromium through
#                                  chromedriver (W3C WebDriver, tests/common/browser.rs): real pages,
#                                  real MSE playback, screenshots; nothing downloads a browser
# Runs as root (CI) or through sudo; non-interactive.
set -euo pipefail

packages=(
    ffmpeg
    python3-gi
    gir1.2-gst-rtsp-server-1.0
    gstreamer1.0-tools
    gstreamer1.0-plugins-base
    gstreamer1.0-plugins-good
    gstreamer1.0-plugins-bad
    gstreamer1.0-plugins-ugly
    gstreamer1.0-x
    libclang-dev
    nasm
    systemd
    strace
    curl
    openssl
    python3-venv
    prometheus
    poppler-utils
    iproute2
    unzip
    chromium
    chromium-driver
    qemu-system-x86
    busybox-static
)
for arg in "$@"; do
    case "$arg" in
        --vm) ;;
        *) echo "install-test-peers: unknown argument $arg" >&2; exit 2 ;;
    esac
done

missing=()
for p in "${packages[@]}"; do
    if [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]]; then
        missing+=("$p")
    fi
done

if ((${#missing[@]})); then
    echo "install-test-peers: installing ${missing[*]}"
    if [[ "$(id -u)" == 0 ]]; then
        as_root=()
    else
        as_root=(sudo)
    fi
    # Wait for another apt (e.g. unattended upgrades) instead of failing on its lock.
    apt_opts=(-y -q --no-install-recommends -o DPkg::Lock::Timeout=600)
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q -o DPkg::Lock::Timeout=600
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install "${apt_opts[@]}" "${missing[@]}"
fi

# Installed is not the same as usable: check what the tests actually load.
problems=()
for element in x264enc x265enc voaacenc rtph264pay rtph265pay rtpmp4gpay qtdemux h264parse aacparse clocksync; do
    gst-inspect-1.0 --exists "$element" || problems+=("GStreamer element $element")
done
/usr/bin/python3 -c '
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstRtspServer
' || problems+=("GstRtspServer introspection for /usr/bin/python3")
command -v promtool >/dev/null || problems+=("promtool")
encoders="$(ffmpeg -hide_banner -encoders 2>/dev/null || true)"
for encoder in libx264 libx265 aac; do
    grep -qw "$encoder" <<<"$encoders" || problems+=("ffmpeg encoder $encoder")
done
if ((${#problems[@]})); then
    printf 'install-test-peers: missing after install: %s\n' "${problems[@]}" >&2
    exit 1
fi
echo "install-test-peers: all test peers present"

# schemathesis from PyPI into its own virtualenv (tests/fuzz_api.rs finds it there).
venv="${EDGEREC_TEST_VENV:-$HOME/.cache/edgerec/test-venv}"
schemathesis_version=4.32.5
if [[ "$("$venv/bin/schemathesis" --version 2>/dev/null)" != *"$schemathesis_version"* ]]; then
    echo "install-test-peers: installing schemathesis $schemathesis_version into $venv"
    /usr/bin/python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$schemathesis_version"
fi
