#!/usr/bin/env python3
"""Take a new snapshot of PyPA's advisory database into deploy/advisories (read by bin/audit_offline.py).

    bin/refresh_advisories.py                      # clones https://github.com/pypa/advisory-database (online)
    bin/refresh_advisories.py --source PATH        # a clone or bare mirror already on this machine

Copies, unmodified, every advisory whose PyPI package we pin (requirements.txt, requirements-dev.txt), the
database's licence (CC BY 4.0), and records the commit, its date and the names of every package the database has
advisories for in snapshot.json. Rerun it after adding a pin the database knows (the audit says so).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from audit_offline import ADVISORIES, REQUIREMENTS, SNAPSHOT, normalize_name, parse_yaml, read_pins

UPSTREAM = "https://github.com/pypa/advisory-database"
GIT = shutil.which("git") or "git"


def git(source: Path, *args: str, stdin: bytes | None = None) -> bytes:
    return subprocess.run([GIT, "-C", str(source), *args], input=stdin, capture_output=True, check=True).stdout


def read_blobs(source: Path, rev: str, paths: list[str]) -> dict[str, bytes]:
    """All files at once through one `git cat-file --batch` (the database has thousands)."""
    output = git(source, "cat-file", "--batch", stdin="".join(f"{rev}:{path}\n" for path in paths).encode())
    blobs: dict[str, bytes] = {}
    position = 0
    for path in paths:
        header_end = output.index(b"\n", position)
        size = int(output[position:header_end].split()[2])
        blobs[path] = output[header_end + 1:header_end + 1 + size]
        position = header_end + 1 + size + 1  # the blob, then a newline
    return blobs


def refresh(source: Path, rev: str) -> dict[str, object]:
    pinned = set(read_pins(REQUIREMENTS))
    commit = git(source, "rev-parse", f"{rev}^{{commit}}").decode().strip()
    commit_date = git(source, "show", "-s", "--format=%cI", commit).decode().strip()
    paths = [path for path in git(source, "ls-tree", "-r", "--name-only", commit, "vulns").decode().splitlines()
             if path.endswith((".yaml", ".yml"))]
    in_database: set[str] = set()
    chosen: dict[str, bytes] = {}
    for path, blob in read_blobs(source, commit, paths).items():
        names = {normalize_name(entry["package"]["name"])
                 for entry in parse_yaml(blob).get("affected") or []
                 if entry.get("package", {}).get("ecosystem") == "PyPI"}
        in_database |= names
        if names & pinned:
            chosen[path] = blob
    shutil.rmtree(ADVISORIES / "vulns", ignore_errors=True)
    for path, blob in chosen.items():
        target = ADVISORIES / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(blob)
    (ADVISORIES / "LICENSE").write_bytes(git(source, "show", f"{commit}:LICENSE"))
    snapshot = {
        "source": UPSTREAM,
        "commit": commit,
        "commit_date": commit_date,
        "license": "CC-BY-4.0",
        "advisories_vendored": len(chosen),
        "packages_in_database": sorted(in_database),
    }
    SNAPSHOT.write_text(json.dumps(snapshot, indent=1) + "\n")
    return snapshot


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, help="a git clone (or bare mirror) of the database; default: clone")
    parser.add_argument("--rev", default="HEAD")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        source = arguments.source
        if source is None:
            source = Path(scratch) / "advisory-database"
            subprocess.run([GIT, "clone", "--quiet", "--depth", "1", UPSTREAM, str(source)], check=True)
        snapshot = refresh(source, arguments.rev)
    print(f"{snapshot['advisories_vendored']} advisories for our pins from {snapshot['source']} at "
          f"{snapshot['commit']} ({snapshot['commit_date']}) in {ADVISORIES.relative_to(ADVISORIES.parents[1])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
