#!/usr/bin/env python3
"""Check that edgerec still builds with the Rust of the Yocto release we target.

Yocto wrynose ships Rust 1.94, so:
  * Cargo.toml's `rust-version` must be at most 1.94, and
  * no crate locked in Cargo.lock may declare a `rust-version` above 1.94 (Cargo would refuse
    to build it with the Yocto toolchain, or it would fail on a newer language feature).
It also checks DESIGN.md §7's rule for the release profile: no `strip = true`, because Yocto
splits debug symbols itself and rejects binaries that arrive already stripped.

Each locked crate's Cargo.toml is read from Cargo's registry cache ($CARGO_HOME/registry/src,
or the downloaded .crate archive if it was never unpacked). Run `cargo fetch --locked` first
so every crate is there.

Exit status: 0 all good, 1 a limit is exceeded, 2 something could not be read.
Python 3.11 or newer (tomllib), standard library only.
"""

from __future__ import annotations

import argparse
import os
import sys
import tarfile
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11.
    sys.exit("check-msrv: needs Python 3.11 or newer for tomllib")

REPO_ROOT = Path(__file__).resolve().parent.parent
# Rust in Yocto wrynose (openembedded-core meta/recipes-devtools/rust/rust_1.94.1.bb).
DEFAULT_MAX_RUST = "1.94"
# How many problem lines to print per kind before summarising the rest.
MAX_REPORTED = 30
CRATES_IO_SOURCES = (
    "registry+https://github.com/rust-lang/crates.io-index",
    "sparse+https://index.crates.io/",
)


def parse_rust_version(text: str) -> tuple[int, int, int]:
    """Parse "1.89" or "1.89.0" into a comparable (major, minor, patch); raise ValueError otherwise."""
    parts = text.strip().split(".")
    if not 1 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
        raise ValueError(f"not a Rust version: {text!r}")
    numbers = [int(p) for p in parts] + [0] * (3 - len(parts))
    return numbers[0], numbers[1], numbers[2]


def cargo_home() -> Path:
    """Cargo's home, where the registry cache lives."""
    return Path(os.environ.get("CARGO_HOME") or Path.home() / ".cargo")


def read_crate_manifest(home: Path, name: str, version: str) -> dict | None:
    """Return the parsed Cargo.toml of crate `name` `version` from the registry cache, or None."""
    dirname = f"{name}-{version}"
    for manifest in sorted(home.glob(f"registry/src/*/{dirname}/Cargo.toml")):
        with manifest.open("rb") as f:
            return tomllib.load(f)
    # Downloaded but never unpacked (e.g. a crate only some other target builds).
    for archive in sorted(home.glob(f"registry/cache/*/{dirname}.crate")):
        with tarfile.open(archive, "r:gz") as tar:
            member = tar.extractfile(f"{dirname}/Cargo.toml")
            if member is not None:
                return tomllib.loads(member.read().decode("utf-8"))
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max", default=DEFAULT_MAX_RUST, help="highest Rust version allowed (default %(default)s)")
    parser.add_argument("--manifest", type=Path, default=REPO_ROOT / "Cargo.toml")
    parser.add_argument("--lock", type=Path, default=REPO_ROOT / "Cargo.lock")
    args = parser.parse_args()
    limit = parse_rust_version(args.max)

    try:
        with args.manifest.open("rb") as f:
            manifest = tomllib.load(f)
        with args.lock.open("rb") as f:
            lock = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        print(f"check-msrv: {e}", file=sys.stderr)
        return 2

    errors: list[str] = []

    package = manifest.get("package", {})
    own = package.get("rust-version")
    if own is None:
        errors.append(f"{args.manifest.name}: [package] has no rust-version; set it (at most {args.max})")
    else:
        try:
            if parse_rust_version(str(own)) > limit:
                errors.append(f"{args.manifest.name}: rust-version {own} is above {args.max}")
        except ValueError as e:
            errors.append(f"{args.manifest.name}: {e}")

    strip = manifest.get("profile", {}).get("release", {}).get("strip")
    if strip in (True, "symbols"):
        shown = "true" if strip is True else f'"{strip}"'
        errors.append(f"{args.manifest.name}: [profile.release] strip = {shown}; Yocto strips and splits debug info itself")

    home = cargo_home()
    checked = 0
    unreadable: list[str] = []
    highest: tuple[tuple[int, int, int], str] | None = None
    for pkg in lock.get("package", []):
        if pkg.get("source") not in CRATES_IO_SOURCES:
            continue
        name, version = pkg["name"], pkg["version"]
        try:
            crate_manifest = read_crate_manifest(home, name, version)
        except (OSError, tarfile.TarError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            unreadable.append(f"{name} {version}: {e}")
            continue
        if crate_manifest is None:
            unreadable.append(f"{name} {version}: not in {home}/registry (run `cargo fetch --locked`)")
            continue
        checked += 1
        declared = crate_manifest.get("package", {}).get("rust-version")
        if declared is None:
            continue
        try:
            parsed = parse_rust_version(str(declared))
        except ValueError as e:
            errors.append(f"{name} {version}: {e}")
            continue
        if parsed > limit:
            errors.append(f"{name} {version} declares rust-version {declared}, above {args.max}")
        if highest is None or parsed > highest[0]:
            highest = (parsed, f"{declared} ({name} {version})")

    # Enough lines to act on; a wholly empty registry cache would otherwise print hundreds.
    for line in unreadable[:MAX_REPORTED]:
        print(f"check-msrv: cannot read {line}", file=sys.stderr)
    if len(unreadable) > MAX_REPORTED:
        print(f"check-msrv: ... and {len(unreadable) - MAX_REPORTED} more unreadable crates", file=sys.stderr)
    for line in errors[:MAX_REPORTED]:
        print(f"check-msrv: {line}", file=sys.stderr)
    if len(errors) > MAX_REPORTED:
        print(f"check-msrv: ... and {len(errors) - MAX_REPORTED} more problems", file=sys.stderr)
    if errors:
        return 1
    if unreadable:
        return 2
    top = highest[1] if highest else "none declared"
    print(f"check-msrv: edgerec rust-version {own} <= {args.max}; {checked} locked crates checked, "
          f"highest declared rust-version {top}; release profile does not strip")
    return 0


if __name__ == "__main__":
    sys.exit(main())
