#!/usr/bin/env python3
"""Known vulnerabilities in the pinned requirements, without a vulnerability service.

`make audit` (pip-audit) asks an online service, which the machines this project is built and tested on cannot
reach. This is its offline equivalent, run by `make test` (tests/test_dependency_advisories.py): PyPA's advisory
database (OSV format, the data behind pip-audit's PyPI service), vendored in deploy/advisories for the packages we
pin, is evaluated against every `name==version` in requirements.txt and requirements-dev.txt. An advisory we accept
goes into deploy/advisories/accepted.toml with its reason. bin/refresh_advisories.py takes a newer snapshot.

Exit status 1 names each vulnerable pin (package, version, advisory, fixed versions), each accepted entry that no
longer matches anything, and each pin the snapshot holds advisories for but did not vendor.
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from packaging.requirements import Requirement
from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = (ROOT / "requirements.txt", ROOT / "requirements-dev.txt")
ADVISORIES = ROOT / "deploy" / "advisories"
ACCEPTED = ADVISORIES / "accepted.toml"
SNAPSHOT = ADVISORIES / "snapshot.json"


def parse_yaml(data: bytes) -> Any:
    # libyaml's safe loader reads the vendored files several times faster; the pure-Python one gives the same result.
    if yaml.__with_libyaml__:
        return yaml.load(data, Loader=yaml.CSafeLoader)
    return yaml.safe_load(data)


def normalize_name(name: str) -> str:
    """PEP 503: `PyYAML`, `pyyaml` and `django_filter`/`django-filter` are the same project."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Pin:
    name: str  # normalized
    version: Version
    where: str  # file:line, for the message


def read_pins(paths: Iterable[Path]) -> dict[str, Pin]:
    """Every requirement of the files (and the files they include with -r), which must all be exact pins: the
    audit vouches for the versions we install, and an open range installs whatever is newest that day."""
    pins: dict[str, Pin] = {}
    seen: set[Path] = set()

    def read(path: Path) -> None:
        path = path.resolve()
        if path in seen:
            return
        seen.add(path)
        for number, raw in enumerate(path.read_text().splitlines(), start=1):
            line = raw.split(" #", 1)[0].strip()
            if not line or line.startswith("#"):
                continue
            where = f"{path.name}:{number}"
            option, _, argument = line.partition(" ")
            if option in ("-r", "--requirement"):
                read(path.parent / argument.strip())
                continue
            if line.startswith("-"):
                raise ValueError(f"{where}: option {line!r} is not understood by the offline audit")
            requirement = Requirement(line)
            specifiers = list(requirement.specifier)
            if len(specifiers) != 1 or specifiers[0].operator != "==" or "*" in specifiers[0].version:
                raise ValueError(f"{where}: {line!r} is not pinned with name==version")
            pin = Pin(normalize_name(requirement.name), Version(specifiers[0].version), where)
            earlier = pins.get(pin.name)
            if earlier is not None and earlier.version != pin.version:
                raise ValueError(f"{where}: {pin.name} pinned to {pin.version}, but to {earlier.version} "
                                 f"at {earlier.where}")
            pins.setdefault(pin.name, pin)

    for path in paths:
        read(path)
    return pins


def load_advisories(directory: Path) -> list[dict[str, Any]]:
    """The OSV records under directory/vulns/<package>/*.yaml."""
    return [parse_yaml(path.read_bytes()) for path in sorted(directory.glob("vulns/*/*.yaml"))]


def _parse_listed_version(text: str) -> Version | None:
    # The explicit `versions` lists carry every release ever uploaded, including a few pre-PEP 440 ones; those
    # cannot equal a pin (pins are valid versions), so they are simply not matched.
    try:
        return Version(str(text))
    except InvalidVersion:
        return None


def _in_ecosystem_range(events: list[Mapping[str, Any]], version: Version) -> bool:
    """The OSV evaluation of one ECOSYSTEM range: walk the events in version order; at or past an `introduced`
    the version is affected, at or past a `fixed` (or past a `last_affected`) it is not, until the next
    `introduced`. A range event that is not a valid version raises, since skipping it could hide a vulnerability."""
    ordered: list[tuple[Version, str]] = []
    for event in events:
        for kind in ("introduced", "fixed", "last_affected"):
            if kind in event:
                ordered.append((Version(str(event[kind])), kind))  # "0" parses, and sorts before everything
    vulnerable = False
    for at, kind in sorted(ordered, key=lambda item: item[0]):
        if kind == "introduced" and version >= at:
            vulnerable = True
        elif kind == "fixed" and version >= at:
            vulnerable = False
        elif kind == "last_affected" and version > at:
            vulnerable = False
    return vulnerable


def _affected_entries(advisory: Mapping[str, Any], package: str) -> list[Mapping[str, Any]]:
    return [
        entry for entry in advisory.get("affected") or []
        if (entry.get("package") or {}).get("ecosystem") == "PyPI"
        and normalize_name((entry.get("package") or {}).get("name", "")) == package
    ]


def affects(advisory: Mapping[str, Any], package: str, version: Version) -> bool:
    """Whether the advisory (an OSV record) covers this version of this (normalized) package. A withdrawn
    advisory covers nothing; GIT ranges are ignored (commit ids say nothing about a release number)."""
    if advisory.get("withdrawn"):
        return False
    for entry in _affected_entries(advisory, package):
        if any(_parse_listed_version(listed) == version for listed in entry.get("versions") or []):
            return True
        for affected_range in entry.get("ranges") or []:
            if affected_range.get("type") == "ECOSYSTEM" and _in_ecosystem_range(affected_range["events"], version):
                return True
    return False


def fixed_versions(advisory: Mapping[str, Any], package: str) -> list[str]:
    fixed = {
        str(event["fixed"])
        for entry in _affected_entries(advisory, package)
        for affected_range in entry.get("ranges") or []
        if affected_range.get("type") == "ECOSYSTEM"
        for event in affected_range["events"]
        if "fixed" in event
    }
    return sorted(fixed, key=Version)


@dataclass(frozen=True)
class Finding:
    pin: Pin
    advisory_id: str
    aliases: tuple[str, ...]
    fixed: tuple[str, ...]

    def describe(self) -> str:
        also = f" ({', '.join(self.aliases)})" if self.aliases else ""
        fixed = ", ".join(self.fixed) or "no fixed version"
        return f"{self.pin.name}=={self.pin.version} ({self.pin.where}): {self.advisory_id}{also}; fixed in {fixed}"


@dataclass
class AuditResult:
    vulnerable: list[Finding] = field(default_factory=list)
    accepted: list[Finding] = field(default_factory=list)
    stale_acceptances: list[Mapping[str, str]] = field(default_factory=list)
    not_vendored: list[Pin] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.vulnerable or self.stale_acceptances or self.not_vendored)

    def report(self) -> str:
        lines = [f"VULNERABLE {finding.describe()}" for finding in self.vulnerable]
        lines += [f"accepted   {finding.describe()}" for finding in self.accepted]
        lines += [
            f"STALE      accepted.toml entry {entry['id']} for {entry['package']}=={entry['version']} matches no "
            "finding any more: delete it" for entry in self.stale_acceptances
        ]
        lines += [
            f"MISSING    {pin.name} ({pin.where}) has advisories in the database snapshot but none were vendored: "
            "run `make advisories-refresh`" for pin in self.not_vendored
        ]
        return "\n".join(lines)


def read_accepted(path: Path) -> list[dict[str, str]]:
    """accepted.toml: [[accepted]] tables with id, package, version and a non-empty reason."""
    entries = tomllib.loads(path.read_text()).get("accepted", [])
    for entry in entries:
        missing = [key for key in ("id", "package", "version", "reason") if not str(entry.get(key, "")).strip()]
        if missing:
            raise ValueError(f"{path.name}: entry {entry.get('id', '?')} lacks {', '.join(missing)}")
    return entries


def audit(
    pins: Mapping[str, Pin],
    advisories: Iterable[Mapping[str, Any]],
    *,
    accepted: Iterable[Mapping[str, str]] = (),
    packages_in_database: Iterable[str] = (),
) -> AuditResult:
    """Every advisory that affects a pin, split into vulnerable and accepted. `packages_in_database` (the PyPI
    names the snapshot holds any advisory for) catches a pin added after the last refresh, whose advisories are
    in the database but not in the vendored subset."""
    advisories = list(advisories)
    acceptances = {(entry["id"], normalize_name(entry["package"]), Version(entry["version"])): entry
                   for entry in accepted}
    used: set[tuple[str, str, Version]] = set()
    result = AuditResult()
    vendored: set[str] = set()
    for advisory in advisories:
        for entry in advisory.get("affected") or []:
            vendored.add(normalize_name((entry.get("package") or {}).get("name", "")))
    for pin in sorted(pins.values(), key=lambda pin: pin.name):
        for advisory in advisories:
            if not affects(advisory, pin.name, pin.version):
                continue
            finding = Finding(pin, advisory["id"], tuple(advisory.get("aliases") or ()),
                              tuple(fixed_versions(advisory, pin.name)))
            key = (advisory["id"], pin.name, pin.version)
            if key in acceptances:
                used.add(key)
                result.accepted.append(finding)
            else:
                result.vulnerable.append(finding)
    result.stale_acceptances = [entry for key, entry in acceptances.items() if key not in used]
    in_database = {normalize_name(name) for name in packages_in_database}
    result.not_vendored = [pin for name, pin in sorted(pins.items()) if name in in_database and name not in vendored]
    return result


def read_snapshot(path: Path = SNAPSHOT) -> dict[str, Any]:
    return json.loads(path.read_text())


def audit_our_pins() -> tuple[AuditResult, dict[str, Any], int]:
    """The real check: our pins against the vendored snapshot and accepted.toml."""
    pins = read_pins(REQUIREMENTS)
    snapshot = read_snapshot()
    result = audit(pins, load_advisories(ADVISORIES), accepted=read_accepted(ACCEPTED),
                   packages_in_database=snapshot["packages_in_database"])
    return result, snapshot, len(pins)


def main() -> int:
    result, snapshot, pin_count = audit_our_pins()
    if result.report():
        print(result.report())
    print(f"{pin_count} pins checked against {snapshot['source']} at {snapshot['commit'][:12]} "
          f"({snapshot['commit_date']}): {'ok' if result.ok else 'FAILED'}")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
