#!/usr/bin/env bash
# Appliance packaging checks (DESIGN.md §7), called by .ci/run. Runs every check, prints one
# PASS/FAIL line for each, and exits non-zero if any failed.
#
#   (a) yocto-layer/.../edgerec-crates.inc is exactly what Cargo.lock gives; no git dependencies.
#   (b) oelint-adv (pinned, installed into a venv under ~/.cache) is clean on meta-edgerec, and
#       config/edgerec.example.toml keeps its data inside the unit's writable data directory,
#       as shipped (/var/lib/edgerec) and as the recipe rewrites it (/data/edgerec).
#   (c) systemd/edgerec.service, as shipped and with meta-edgerec's drop-in:
#       `systemd-analyze verify` prints nothing, `systemd-analyze security --offline=yes`
#       exposure <= 2.0; systemd/edgerec.sysusers.conf parses.
#   (d) MSRV: Cargo.toml's rust-version and every locked crate's are <= 1.94 (Yocto wrynose);
#       the release profile does not strip.
#   (e) No fault hook in the production binary (issue 11 point 5): `cargo build --release
#       --locked`, as the Yocto recipe builds it (without the `fault-injection` feature the
#       test suite enables), holds neither the `EDGEREC_FAULT_` variables nor `edgerec::fault`.
#       It runs before (c), which then verifies the unit against that production binary.
#
# Needs python3 >= 3.11, cargo, and systemd-analyze (installed with apt when running as root).
# `systemd-analyze verify` insists that ExecStart= exists, so the unit is verified from a copy
# whose ExecStart= is the release binary, built with `cargo build --release --locked` if absent
# (or $EDGEREC_BIN, any executable, when set).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1

# Rust shipped by Yocto wrynose (openembedded-core rust_1.94.1.bb).
MAX_RUST=1.94
# systemd-analyze security reports 0.0 (best) to 10.0; CI allows at most this.
MAX_EXPOSURE=2.0
# The data directory meta-edgerec's drop-in is verified with (the recipe's EDGEREC_DATA_DIR).
YOCTO_DATA_DIR=/data/edgerec
# oelint-adv and the two packages it is built on, pinned together so that new rules or a
# changed parser only arrive with a deliberate bump here.
OELINT_PINS=(oelint-adv==9.11.2 oelint-parser==8.13.2 oelint-data==1.5.26)
OELINT_VENV="${XDG_CACHE_HOME:-$HOME/.cache}/edgerec-ci/oelint-venv"
# Rules not run: HOMEPAGE reachability needs the network.
OELINT_SUPPRESS=(oelint.vars.homepageping)
# Findings allowed only in the generated crate list, whose layout must stay byte-identical to
# what bitbake's cargo-update-recipe-crates class writes (`SRC_URI += " \`).
OELINT_GENERATED_INC=recipes-multimedia/edgerec/edgerec-crates.inc
OELINT_GENERATED_RULES='oelint\.vars\.(inconspaces|notneededspace)'

UNIT=systemd/edgerec.service
UNIT_EXECSTART='/usr/bin/edgerec run --config /etc/edgerec/edgerec.toml'
DROPIN=yocto-layer/recipes-multimedia/edgerec/files/10-data-partition.conf
SYSUSERS=systemd/edgerec.sysusers.conf

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

failed=()
passed=0
pass() { echo "appliance-checks: PASS $1"; passed=$((passed + 1)); }
fail() { echo "appliance-checks: FAIL $1"; failed+=("$1"); }
# Indent captured tool output under the PASS/FAIL line it explains.
show() { sed 's/^/    /' "$@"; }

# A python3 new enough for tomllib: the one on PATH, else Debian's.
PYTHON=
for candidate in python3 /usr/bin/python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
        "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        PYTHON=$(command -v "$candidate")
        break
    fi
done
if [ -z "$PYTHON" ]; then
    fail "setup: no python3 >= 3.11 found (the scripts need tomllib)"
    echo "appliance-checks: ${#failed[@]} of 4 checks could not run"
    exit 1
fi

# ---------------------------------------------------------------------------------------------
check_crates_inc() {
    local name="(a) crates-inc"
    if "$PYTHON" scripts/gen-crates-inc.py --check >"$WORK/a.out" 2>&1; then
        pass "$name: $(tail -n 1 "$WORK/a.out" | sed 's/^gen-crates-inc: //')"
    else
        fail "$name: edgerec-crates.inc does not match Cargo.lock (fix: scripts/gen-crates-inc.py)"
        show "$WORK/a.out"
    fi
}

# ---------------------------------------------------------------------------------------------
ensure_oelint() {
    # The stamp records which pins the venv was built with; a bump rebuilds it.
    local stamp="$OELINT_VENV/edgerec-pins.txt"
    if [ -x "$OELINT_VENV/bin/oelint-adv" ] && [ "$(cat "$stamp" 2>/dev/null)" = "${OELINT_PINS[*]}" ]; then
        return 0
    fi
    echo "appliance-checks: installing ${OELINT_PINS[*]} into $OELINT_VENV"
    rm -rf "$OELINT_VENV"
    mkdir -p "$(dirname "$OELINT_VENV")"
    "$PYTHON" -m venv "$OELINT_VENV" &&
        "$OELINT_VENV/bin/pip" install --quiet --disable-pip-version-check "${OELINT_PINS[@]}" &&
        echo "${OELINT_PINS[*]}" >"$stamp"
}

check_oelint() {
    local name="(b) oelint"
    if ! ensure_oelint >"$WORK/b.install" 2>&1; then
        fail "$name: could not install ${OELINT_PINS[*]}"
        show "$WORK/b.install"
        return
    fi
    local files=()
    mapfile -t files < <(cd yocto-layer && find . \( -name '*.bb' -o -name '*.bbappend' -o -name '*.bbclass' \) | sed 's#^\./##' | sort)
    files+=(conf/layer.conf)
    local status=0
    (cd yocto-layer && "$OELINT_VENV/bin/oelint-adv" --quiet --relpaths --release wrynose --mode all \
        --suppress "${OELINT_SUPPRESS[@]}" "${files[@]}") >"$WORK/b.out" 2>&1 || status=$?
    grep -Ev "^${OELINT_GENERATED_INC}:[0-9]+:[a-z]+:${OELINT_GENERATED_RULES}:" "$WORK/b.out" |
        grep -v '^[[:space:]]*$' >"$WORK/b.findings"
    local allowed
    allowed=$(grep -cE "^${OELINT_GENERATED_INC}:[0-9]+:[a-z]+:${OELINT_GENERATED_RULES}:" "$WORK/b.out")
    if [ -s "$WORK/b.findings" ]; then
        fail "$name: findings on meta-edgerec (${files[*]})"
        show "$WORK/b.findings"
    elif [ "$status" -ne 0 ] && [ "$allowed" -eq 0 ]; then
        fail "$name: oelint-adv exited with $status and no output"
    else
        pass "$name: ${OELINT_PINS[0]} --release wrynose --mode all clean on ${files[*]} ($allowed layout findings in the generated .inc allowed)"
    fi
}

# The example config is written for the generic unit (data in /var/lib/edgerec); the recipe
# installs it through files/edgerec-config.sed, which moves its paths to the data partition.
# Under ProtectSystem=strict only the data directory is writable, so in both forms
# `[server] data_dir` must be that directory and every [[storage]] path must lie inside it.
EXAMPLE_CONFIG=config/edgerec.example.toml
CONFIG_SED=yocto-layer/recipes-multimedia/edgerec/files/edgerec-config.sed
GENERIC_DATA_DIR=/var/lib/edgerec

# config_paths_inside CONFIG DATA_DIR: prints why not and fails unless the config's paths fit.
config_paths_inside() {
    "$PYTHON" - "$1" "$2" <<'PY'
import sys, tomllib
from pathlib import PurePosixPath
config_path, data_dir = sys.argv[1], PurePosixPath(sys.argv[2])
with open(config_path, "rb") as f:
    config = tomllib.load(f)
problems = []
server_dir = config.get("server", {}).get("data_dir")
if server_dir != str(data_dir):
    problems.append(f"[server] data_dir is {server_dir!r}, not {str(data_dir)!r}")
for storage in config.get("storage", []):
    path = storage.get("path")
    if path is None:
        continue  # defaults to <data_dir>/storage-<id>
    p = PurePosixPath(path)
    if not p.is_absolute() or ".." in p.parts or not p.is_relative_to(data_dir):
        problems.append(f"[[storage]] {storage.get('id')!r} path {path!r} is outside {data_dir} (read-only to the service)")
for line in problems:
    print(line)
sys.exit(1 if problems else 0)
PY
}

check_recipe_inputs() {
    if [ ! -e "$EXAMPLE_CONFIG" ]; then
        # Not a failure while the config module is being written; the Yocto build needs it.
        echo "appliance-checks: WARN (b) example config: $EXAMPLE_CONFIG does not exist yet; the recipe's do_install needs it"
        return
    fi
    if config_paths_inside "$EXAMPLE_CONFIG" "$GENERIC_DATA_DIR" >"$WORK/b.generic" 2>&1; then
        pass "(b) example config (generic): data_dir and storage paths inside $GENERIC_DATA_DIR"
    else
        fail "(b) example config (generic): $EXAMPLE_CONFIG does not fit systemd/edgerec.service"
        show "$WORK/b.generic"
    fi
    sed -e "s#@EDGEREC_DATA_DIR@#$YOCTO_DATA_DIR#g" "$CONFIG_SED" >"$WORK/b.sed"
    sed -f "$WORK/b.sed" "$EXAMPLE_CONFIG" >"$WORK/b.yocto.toml"
    if config_paths_inside "$WORK/b.yocto.toml" "$YOCTO_DATA_DIR" >"$WORK/b.yocto" 2>&1; then
        pass "(b) example config (yocto): after edgerec-config.sed, data_dir and storage paths inside $YOCTO_DATA_DIR"
    else
        fail "(b) example config (yocto): $EXAMPLE_CONFIG rewritten by edgerec-config.sed does not fit the Yocto unit"
        show "$WORK/b.yocto"
    fi
}

# ---------------------------------------------------------------------------------------------
ensure_systemd_analyze() {
    command -v systemd-analyze >/dev/null 2>&1 && return 0
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "systemd-analyze is missing and cannot be installed here (needs root and apt-get)"
        return 1
    fi
    echo "appliance-checks: installing systemd for systemd-analyze"
    # Wait for another apt run to finish rather than failing on its lock.
    local apt=(apt-get -o DPkg::Lock::Timeout=600 -y -q)
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install --no-install-recommends systemd ||
        { "${apt[@]}" update && DEBIAN_FRONTEND=noninteractive "${apt[@]}" install --no-install-recommends systemd; }
}

# The release binary that the copies' ExecStart= points at; built if absent. EDGEREC_BIN
# names another executable instead (verify only needs ExecStart= to exist), e.g. to check the
# unit locally while the crate does not build.
release_binary() {
    if [ -n "${EDGEREC_BIN:-}" ]; then
        [ -x "$EDGEREC_BIN" ] || { echo "EDGEREC_BIN=$EDGEREC_BIN is not executable" >&2; return 1; }
        echo "$EDGEREC_BIN"
        return
    fi
    local target_dir="${CARGO_TARGET_DIR:-$ROOT/target}"
    case "$target_dir" in /*) ;; *) target_dir="$ROOT/$target_dir" ;; esac
    local bin="$target_dir/release/edgerec"
    if [ ! -x "$bin" ]; then
        echo "appliance-checks: $bin is absent; cargo build --release --locked" >&2
        cargo build --release --locked >&2 || return 1
    fi
    echo "$bin"
}

# verify_and_score LABEL UNIT_FILE: one PASS/FAIL line for verify, one for the exposure score.
verify_and_score() {
    local label=$1 unit=$2 out="$WORK/c.$1"
    local status=0
    SYSTEMD_COLORS=0 systemd-analyze verify "$unit" >"$out.verify" 2>&1 || status=$?
    if [ "$status" -eq 0 ] && [ ! -s "$out.verify" ]; then
        pass "(c) systemd verify ($label): no output"
    else
        fail "(c) systemd verify ($label): exit $status, output follows (any output fails)"
        show "$out.verify"
    fi

    status=0
    SYSTEMD_COLORS=0 systemd-analyze security --offline=yes --no-pager "$unit" >"$out.security" 2>&1 || status=$?
    local score
    score=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9][0-9.]*\).*/\1/p' "$out.security" | tail -n 1)
    if [ -z "$score" ]; then
        fail "(c) systemd security ($label): no exposure score in the output (exit $status)"
        show "$out.security"
    elif awk -v s="$score" -v max="$MAX_EXPOSURE" 'BEGIN { exit !(s + 0 <= max + 0) }'; then
        pass "(c) systemd security ($label): exposure $score <= $MAX_EXPOSURE"
    else
        fail "(c) systemd security ($label): exposure $score > $MAX_EXPOSURE; unmet settings:"
        grep '✗' "$out.security" | show
    fi
}

check_systemd() {
    if ! ensure_systemd_analyze >"$WORK/c.install" 2>&1; then
        fail "(c) systemd: systemd-analyze not available"
        show "$WORK/c.install"
        return
    fi
    local count
    count=$(grep -cxF "ExecStart=$UNIT_EXECSTART" "$UNIT")
    if [ "$count" -ne 1 ]; then
        fail "(c) systemd: $UNIT must have exactly one 'ExecStart=$UNIT_EXECSTART' line (found $count)"
        return
    fi
    local bin
    if ! bin=$(release_binary 2>"$WORK/c.build"); then
        fail "(c) systemd: cargo build --release --locked failed"
        tail -n 30 "$WORK/c.build" | show
        return
    fi

    # The unit as shipped, except that ExecStart= names the binary just built. Verified under
    # its own name, since systemd-analyze derives the unit name from the file name.
    mkdir -p "$WORK/generic" "$WORK/yocto/edgerec.service.d"
    sed "s#^ExecStart=/usr/bin/edgerec #ExecStart=$bin #" "$UNIT" >"$WORK/generic/edgerec.service"
    # The unit as a Yocto image runs it: the same file with meta-edgerec's drop-in beside it,
    # which systemd-analyze loads from the unit's directory as systemd would.
    cp "$WORK/generic/edgerec.service" "$WORK/yocto/edgerec.service"
    sed "s#@EDGEREC_DATA_DIR@#$YOCTO_DATA_DIR#g" "$DROPIN" >"$WORK/yocto/edgerec.service.d/$(basename "$DROPIN")"

    verify_and_score generic "$WORK/generic/edgerec.service"
    verify_and_score yocto "$WORK/yocto/edgerec.service"

    mkdir -p "$WORK/sysusers-root/etc"
    if systemd-sysusers --dry-run --root="$WORK/sysusers-root" "$ROOT/$SYSUSERS" >"$WORK/c.sysusers" 2>&1; then
        pass "(c) systemd sysusers: $SYSUSERS parses"
    else
        fail "(c) systemd sysusers: $SYSUSERS does not parse"
        show "$WORK/c.sysusers"
    fi
}

# ---------------------------------------------------------------------------------------------
check_no_fault_hooks() {
    local name="(e) no fault hooks"
    if [ -n "${EDGEREC_BIN:-}" ]; then
        fail "$name: EDGEREC_BIN is set; this check needs the binary cargo builds here"
        return
    fi
    # Always built (not only when absent): the test suite leaves a binary with the hooks.
    if ! cargo build --release --locked >"$WORK/e.build" 2>&1; then
        fail "$name: cargo build --release --locked failed"
        tail -n 30 "$WORK/e.build" | show
        return
    fi
    local bin="${CARGO_TARGET_DIR:-$ROOT/target}/release/edgerec"
    case "$bin" in /*) ;; *) bin="$ROOT/$bin" ;; esac
    # The variable names are string literals of edgerec::fault only; the module's symbols carry
    # its path (the release profile does not strip).
    local found
    found=$(grep -a -o -E 'EDGEREC_FAULT_[A-Z_]+|7edgerec5fault' "$bin" | sort -u)
    if [ -z "$found" ]; then
        pass "$name: $bin has no EDGEREC_FAULT_ variable and no edgerec::fault symbol"
    else
        fail "$name: $bin was built with fault injection:"
        echo "$found" | show
    fi
}

# ---------------------------------------------------------------------------------------------
check_msrv() {
    local name="(d) msrv"
    # Every locked crate's Cargo.toml must be in the registry cache, including crates only
    # other targets build; fetching is a no-op when they are.
    if ! cargo fetch --locked --quiet >"$WORK/d.fetch" 2>&1; then
        fail "$name: cargo fetch --locked failed"
        show "$WORK/d.fetch"
        return
    fi
    if "$PYTHON" scripts/check-msrv.py --max "$MAX_RUST" >"$WORK/d.out" 2>&1; then
        pass "$name: $(tail -n 1 "$WORK/d.out" | sed 's/^check-msrv: //')"
    else
        fail "$name: a Rust version limit of $MAX_RUST is exceeded or unreadable"
        show "$WORK/d.out"
    fi
}

check_crates_inc
check_oelint
check_recipe_inputs
check_no_fault_hooks
check_systemd
check_msrv

if [ "${#failed[@]}" -eq 0 ]; then
    echo "appliance-checks: OK, all $passed appliance checks passed"
    exit 0
fi
echo "appliance-checks: NOT OK, ${#failed[@]} failing:"
printf '    %s\n' "${failed[@]}"
exit 1
