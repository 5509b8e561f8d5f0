#!/usr/bin/env python3
"""Generate (or check) the Yocto crate list for edgerec from Cargo.lock.

The output is byte-for-byte what OpenEmbedded's `cargo-update-recipe-crates` class writes
(`bitbake -c update_crates edgerec`, wrynose): one `crate://crates.io/NAME/VERSION` line in
SRC_URI and one `SRC_URI[NAME-VERSION.sha256sum]` line per crates.io package, in Cargo.lock
order. Keeping the generator in the repository lets CI check the recipe without bitbake.

Unlike the bitbake class, this script refuses what the Yocto build could not fetch: git
dependencies, other registries, and registry packages without a checksum. It reads only the
top-level Cargo.lock, which is the one the recipe builds with (`cargo build --frozen`).

Usage:
    scripts/gen-crates-inc.py            rewrite the .inc from Cargo.lock
    scripts/gen-crates-inc.py --check    exit 1 if the .inc differs from what Cargo.lock gives

Exit status: 0 success, 1 the .inc is out of date (--check), 2 Cargo.lock cannot be used.
Python 3.11 or newer (tomllib), standard library only.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from dataclasses import dataclass
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11.
    sys.exit("gen-crates-inc: needs Python 3.11 or newer for tomllib")

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_LOCK = REPO_ROOT / "Cargo.lock"
DEFAULT_INC = REPO_ROOT / "yocto-layer/recipes-multimedia/edgerec/edgerec-crates.inc"
# The recipe's PN, as bitbake writes it into the header comment.
DEFAULT_PN = "edgerec"

# Cargo writes this source for every crates.io package, whether it was resolved through the git
# index or the sparse protocol. The sparse spelling is accepted too in case a future Cargo
# writes it; both are what bitbake's crate:// fetcher downloads from.
CRATES_IO_SOURCES = (
    "registry+https://github.com/rust-lang/crates.io-index",
    "sparse+https://index.crates.io/",
)

# crate names on crates.io: ASCII letters, digits, '-' and '_'. Versions: semver, possibly with
# pre-release and build metadata. Anything else could break the generated bitbake syntax.
CRATE_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
CRATE_VERSION_RE = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.+-]+)?$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


class LockError(Exception):
    """Cargo.lock holds something the Yocto build cannot fetch, or cannot be parsed."""


@dataclass(frozen=True)
class LockedCrate:
    """One crates.io package from Cargo.lock, validated."""

    # The crate name exactly as on crates.io (used in the crate:// URL).
    name: str
    # The exact locked version.
    version: str
    # sha256 of the .crate archive, lowercase hex, as Cargo recorded it.
    checksum: str

    @property
    def key(self) -> str:
        """The SRC_URI flag name bitbake uses for this crate's checksum."""
        return f"{self.name}-{self.version}"


def read_locked_crates(lock_path: Path) -> list[LockedCrate]:
    """Return the crates.io packages of `lock_path` in file order, or raise LockError."""
    try:
        with lock_path.open("rb") as f:
            lock = tomllib.load(f)
    except OSError as e:
        raise LockError(f"cannot read {lock_path}: {e}") from e
    except tomllib.TOMLDecodeError as e:
        raise LockError(f"{lock_path} is not valid TOML: {e}") from e

    lock_version = lock.get("version")
    if not isinstance(lock_version, int) or lock_version < 3:
        # Version 1/2 lock files keep checksums in [metadata]; Cargo has not written them since 1.53.
        raise LockError(f"{lock_path}: lock file format version {lock_version!r} is not supported (need 3 or newer)")

    crates: list[LockedCrate] = []
    problems: list[str] = []
    for package in lock.get("package", []):
        name = package.get("name", "?")
        version = package.get("version", "?")
        where = f"{name} {version}"
        source = package.get("source")
        if source is None:
            # A path package: the workspace itself. Nothing to fetch.
            continue
        if source.startswith("git+"):
            problems.append(f"{where}: git dependency ({source}); Yocto's crate fetcher cannot fetch it, publish it or vendor it as a path crate")
            continue
        if source not in CRATES_IO_SOURCES:
            problems.append(f"{where}: source {source!r} is not crates.io; bitbake's crate:// fetcher only knows crates.io")
            continue
        checksum = package.get("checksum")
        if not isinstance(checksum, str) or not SHA256_RE.match(checksum):
            problems.append(f"{where}: missing or malformed checksum {checksum!r}")
            continue
        if not CRATE_NAME_RE.match(name) or not CRATE_VERSION_RE.match(version):
            problems.append(f"{where}: name or version has characters that cannot go into a crate:// URL")
            continue
        crates.append(LockedCrate(name=name, version=version, checksum=checksum))

    if problems:
        raise LockError(f"{lock_path}:\n  " + "\n  ".join(problems))
    if not crates:
        raise LockError(f"{lock_path}: no crates.io packages at all; is this the right Cargo.lock?")
    return crates


def render_inc(crates: list[LockedCrate], pn: str, lock_relpath: str) -> str:
    """Render the .inc text exactly as cargo-update-recipe-crates.bbclass lays it out."""
    lines = [
        f"# Autogenerated with 'bitbake -c update_crates {pn}'",
        "",
        f"# from {lock_relpath}",
        'SRC_URI += " \\',
    ]
    lines += [f"    crate://crates.io/{c.name}/{c.version} \\" for c in crates]
    lines += ['"', ""]
    lines += [f'SRC_URI[{c.key}.sha256sum] = "{c.checksum}"' for c in crates]
    return "\n".join(lines) + "\n"


def parse_inc(text: str) -> tuple[set[str], dict[str, str]]:
    """Return the crate URLs and checksum flags found in an existing .inc, for a readable diff."""
    urls = set(re.findall(r"crate://crates\.io/([^\s\\]+)", text))
    sums = dict(re.findall(r'^SRC_URI\[([^\]]+)\.sha256sum\]\s*=\s*"([^"]*)"', text, re.M))
    return urls, sums


def explain_difference(crates: list[LockedCrate], existing: str) -> list[str]:
    """Say crate by crate what differs between Cargo.lock and the existing .inc."""
    have_urls, have_sums = parse_inc(existing)
    want_urls = {f"{c.name}/{c.version}" for c in crates}
    want_sums = {c.key: c.checksum for c in crates}
    notes = [f"missing from .inc: {u}" for u in sorted(want_urls - have_urls)]
    notes += [f"not in Cargo.lock: {u}" for u in sorted(have_urls - want_urls)]
    for key in sorted(want_sums.keys() & have_sums.keys()):
        if want_sums[key] != have_sums[key]:
            notes.append(f"checksum differs for {key}: .inc {have_sums[key]}, Cargo.lock {want_sums[key]}")
    notes += [f"checksum missing for {k}" for k in sorted(want_sums.keys() - have_sums.keys())]
    notes += [f"stale checksum for {k}" for k in sorted(have_sums.keys() - want_sums.keys())]
    return notes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lock", type=Path, default=DEFAULT_LOCK, help="Cargo.lock to read (default: the repository's)")
    parser.add_argument("--inc", type=Path, default=DEFAULT_INC, help="the .inc to write or check")
    parser.add_argument("--pn", default=DEFAULT_PN, help="recipe name for the header comment")
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 if the .inc is not up to date")
    args = parser.parse_args()

    try:
        crates = read_locked_crates(args.lock)
    except LockError as e:
        print(f"gen-crates-inc: {e}", file=sys.stderr)
        return 2

    # bitbake names the lock file relative to the source tree, which is the repository root.
    wanted = render_inc(crates, args.pn, args.lock.name)

    if not args.check:
        args.inc.parent.mkdir(parents=True, exist_ok=True)
        args.inc.write_text(wanted, encoding="utf-8")
        print(f"gen-crates-inc: wrote {args.inc} ({len(crates)} crates)")
        return 0

    try:
        existing = args.inc.read_text(encoding="utf-8")
    except OSError as e:
        print(f"gen-crates-inc: cannot read {args.inc}: {e}; run scripts/gen-crates-inc.py", file=sys.stderr)
        return 1
    if existing == wanted:
        print(f"gen-crates-inc: {args.inc.name} matches {args.lock.name} ({len(crates)} crates, no git dependencies)")
        return 0

    print(f"gen-crates-inc: {args.inc} is out of date with {args.lock}; run scripts/gen-crates-inc.py", file=sys.stderr)
    notes = explain_difference(crates, existing)
    for note in notes[:50]:
        print(f"  {note}", file=sys.stderr)
    if len(notes) > 50:
        print(f"  ... and {len(notes) - 50} more", file=sys.stderr)
    if not notes:
        # Same crates and checksums, different layout: show where.
        diff = difflib.unified_diff(existing.splitlines(), wanted.splitlines(), "existing", "expected", lineterm="", n=1)
        for line in list(diff)[:40]:
            print(f"  {line}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
