"""The offline vulnerability audit (bin/audit_offline.py): OSV range evaluation on synthetic advisories, pin
parsing, the accepted list, and the real check of our pins against the vendored PyPA advisory snapshot."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from packaging.version import Version


def _load_audit_module():
    # Loaded by path rather than by putting bin/ on sys.path, where its other scripts would shadow module names for
    # the whole test session; registered so that its dataclasses can find their module.
    spec = importlib.util.spec_from_file_location("audit_offline", Path(__file__).resolve().parent.parent / "bin" /
                                                  "audit_offline.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


audit_offline = _load_audit_module()
Pin = audit_offline.Pin
affects = audit_offline.affects
audit = audit_offline.audit
fixed_versions = audit_offline.fixed_versions
normalize_name = audit_offline.normalize_name
read_accepted = audit_offline.read_accepted
read_pins = audit_offline.read_pins


def advisory(*ranges: list[dict[str, str]], versions: tuple[str, ...] = (), name: str = "Some_Package",
             ecosystem: str = "PyPI", **fields: object) -> dict:
    entry: dict = {"package": {"ecosystem": ecosystem, "name": name},
                   "ranges": [{"type": "ECOSYSTEM", "events": events} for events in ranges]}
    if versions:
        entry["versions"] = list(versions)
    return {"id": "PYSEC-TEST-1", "aliases": ["CVE-TEST-1"], "affected": [entry], **fields}


def is_affected(record: dict, version: str) -> bool:
    return affects(record, "some-package", Version(version))


TWO_BRANCHES = advisory([{"introduced": "3.2"}, {"fixed": "3.2.25"}, {"introduced": "4.2"}, {"fixed": "4.2.11"}])


@pytest.mark.parametrize(("version", "expected"), [
    ("3.1.9", False), ("3.2", True), ("3.2.24", True), ("3.2.25", False), ("4.0", False),
    ("4.2", True), ("4.2.10", True), ("4.2.11", False), ("5.0", False), ("4.2.11rc1", True),
])
def test_introduced_and_fixed_events_open_and_close_each_branch(version, expected):
    assert is_affected(TWO_BRANCHES, version) is expected


def test_introduced_zero_means_every_earlier_release():
    record = advisory([{"introduced": "0"}, {"fixed": "2.0"}])
    assert is_affected(record, "0.0.1") and is_affected(record, "1.99")
    assert not is_affected(record, "2.0")


def test_last_affected_is_inclusive_and_without_upper_bound_all_later_releases_are_affected():
    assert is_affected(advisory([{"introduced": "1.0"}, {"last_affected": "1.4.2"}]), "1.4.2")
    assert not is_affected(advisory([{"introduced": "1.0"}, {"last_affected": "1.4.2"}]), "1.4.3")
    assert is_affected(advisory([{"introduced": "1.0"}]), "99.0")


def test_events_are_evaluated_in_version_order_and_separate_ranges_each_count():
    shuffled = advisory([{"fixed": "2.1"}, {"introduced": "1.0"}, {"fixed": "1.5"}, {"introduced": "2.0"}])
    assert [is_affected(shuffled, v) for v in ("1.2", "1.7", "2.0.5", "2.1")] == [True, False, True, False]
    separate = advisory([{"introduced": "1.0"}, {"fixed": "1.5"}], [{"introduced": "2.0"}, {"fixed": "2.1"}])
    assert [is_affected(separate, v) for v in ("1.2", "1.7", "2.0.5", "2.1")] == [True, False, True, False]
    assert fixed_versions(separate, "some-package") == ["1.5", "2.1"]


def test_an_explicit_versions_list_matches_by_version_equality_and_ignores_legacy_strings():
    record = advisory(versions=("1.0", "1.1.post1", "not a version"))
    assert is_affected(record, "1.0.0") and is_affected(record, "1.1.post1")
    assert not is_affected(record, "1.1")


def test_a_withdrawn_advisory_affects_nothing():
    assert not is_affected(advisory([{"introduced": "0"}], withdrawn="2024-01-01T00:00:00Z"), "1.0")


def test_only_the_same_pypi_project_is_matched_with_names_normalized():
    assert affects(advisory([{"introduced": "0"}], name="PyYAML"), "pyyaml", Version("6.0"))
    assert affects(advisory([{"introduced": "0"}], name="django_filter"), "django-filter", Version("1"))
    assert not affects(advisory([{"introduced": "0"}], name="other"), "some-package", Version("1"))
    assert not affects(advisory([{"introduced": "0"}], ecosystem="npm"), "some-package", Version("1"))
    assert not affects({**advisory(), "affected": [{"package": {"ecosystem": "PyPI", "name": "some-package"},
                        "ranges": [{"type": "GIT", "repo": "x", "events": [{"introduced": "0"}]}]}]},
                       "some-package", Version("1"))


def test_an_unreadable_range_version_fails_loudly_rather_than_hiding_a_vulnerability():
    with pytest.raises(ValueError):
        is_affected(advisory([{"introduced": "not-a-version"}]), "1.0")


def test_pins_are_read_with_extras_includes_and_normalized_names(tmp_path):
    (tmp_path / "base.txt").write_text("# comment\nDjango==5.2.19\ncelery[redis]==5.7.0  # why\n\n")
    (tmp_path / "dev.txt").write_text("-r base.txt\nfactory_boy==3.3.3\ndjango==5.2.19\n")
    pins = read_pins([tmp_path / "base.txt", tmp_path / "dev.txt"])
    assert {name: str(pin.version) for name, pin in pins.items()} == {
        "django": "5.2.19", "celery": "5.7.0", "factory-boy": "3.3.3"}
    assert pins["celery"].where == "base.txt:3"
    assert normalize_name("Zope.Interface_x") == "zope-interface-x"


@pytest.mark.parametrize("line", ["django>=5", "django", "django==5.*", "django==5.2,<6", "--index-url x"])
def test_anything_but_an_exact_pin_is_refused(tmp_path, line):
    (tmp_path / "requirements.txt").write_text(line + "\n")
    with pytest.raises(ValueError, match="requirements.txt:1"):
        read_pins([tmp_path / "requirements.txt"])


def test_a_finding_names_package_version_advisory_and_fixes_and_acceptances_must_still_match():
    pins = {"some-package": Pin("some-package", Version("4.2.1"), "requirements.txt:7")}
    result = audit(pins, [TWO_BRANCHES])
    assert not result.ok
    assert result.report() == ("VULNERABLE some-package==4.2.1 (requirements.txt:7): PYSEC-TEST-1 (CVE-TEST-1); "
                               "fixed in 3.2.25, 4.2.11")
    accepted = [{"id": "PYSEC-TEST-1", "package": "Some_Package", "version": "4.2.1", "reason": "not reachable"}]
    assert audit(pins, [TWO_BRANCHES], accepted=accepted).ok
    moved_on = {"some-package": Pin("some-package", Version("4.2.11"), "requirements.txt:7")}
    stale = audit(moved_on, [TWO_BRANCHES], accepted=accepted)
    assert not stale.ok and "STALE" in stale.report() and "PYSEC-TEST-1" in stale.report()


def test_an_acceptance_without_a_reason_is_refused(tmp_path):
    (tmp_path / "accepted.toml").write_text('[[accepted]]\nid = "X"\npackage = "p"\nversion = "1"\nreason = " "\n')
    with pytest.raises(ValueError, match="reason"):
        read_accepted(tmp_path / "accepted.toml")


def test_a_pin_whose_advisories_were_not_vendored_is_reported():
    pins = {"newcomer": Pin("newcomer", Version("1.0"), "requirements.txt:9")}
    result = audit(pins, [TWO_BRANCHES], packages_in_database=["NewComer", "some_package"])
    assert [pin.name for pin in result.not_vendored] == ["newcomer"] and "MISSING" in result.report()


def test_our_pins_have_no_known_vulnerability_in_the_vendored_advisories():
    result, snapshot, pin_count = audit_offline.audit_our_pins()
    assert result.ok, result.report()
    assert pin_count > 40 and len(snapshot["commit"]) == 40 and snapshot["license"] == "CC-BY-4.0"
    vendored = list((audit_offline.ADVISORIES / "vulns").glob("*/*.yaml"))
    assert len(vendored) == snapshot["advisories_vendored"] > 0
    # The data is really there: Django's advisories are vendored and the evaluation sees an old release as hit.
    old_django = {"django": Pin("django", Version("5.0.2"), "example")}
    assert audit(old_django, audit_offline.load_advisories(audit_offline.ADVISORIES)).vulnerable
