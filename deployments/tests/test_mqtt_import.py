"""Importing many MQTT users: CSV bodies read as they arrive, batch by batch in one transaction, all or nothing."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest

from deployments.models import Deployment, MqttAccess, MqttUser
from deployments.mqtt_access import hashing, imports
from projects.models import AuditEvent
from projects.roles import Role
from projects.tenancy import Principal

LEGACY = hashlib.pbkdf2_hmac("sha256", b"legacy-pass", b"legacysalt", 4096, 32).hex()


def import_csv(api, deployment: Deployment, body: str | bytes, dry_run: bool = False):
    url = f"/api/v1/deployments/{deployment.id}/mqtt-users/import" + ("?dry_run=true" if dry_run else "")
    return api.post(url, data=body.encode() if isinstance(body, str) else body, content_type="text/csv")


def test_csv_lines_skip_blanks_and_the_header_and_report_malformed_lines() -> None:
    text = ("username,password\n\nalice,secret-pass\n\"bob, the builder\",\"pass,word\"\n"
            f"carol,{LEGACY},legacysalt,pbkdf2_sha256\nonly-one-column\n")
    lines = list(imports.csv_lines(text.splitlines(keepends=True)))
    assert [(line.line, line.username, line.kind) for line in lines] == [
        (3, "alice", "password"), (4, "bob, the builder", "password"), (5, "carol", "pbkdf2_sha256"),
        (6, "only-one-column", "")]
    assert lines[1].user == {"username": "bob, the builder", "password": "pass,word"}
    assert lines[3].user is None and "found 1" in lines[3].problem


@pytest.mark.django_db
def test_a_csv_body_is_imported_with_dry_run_and_line_numbers(api, deployment) -> None:
    api.post(f"/api/v1/deployments/{deployment.id}/mqtt-users", {"username": "kept", "password": "same-pass"},
             format="json")
    body = ("username,password\nkept,same-pass\nnew-1,new-pass-1\n"
            f"hashed,{LEGACY},legacysalt,pbkdf2_sha256\nNEW-1,other-pass\nshort,x\nthree,columns,here\n")
    dry = import_csv(api, deployment, body, dry_run=True)
    assert dry.status_code == 200, dry.content
    assert {key: dry.json()[key] for key in ("created", "updated", "unchanged", "errors_total", "dry_run")} == {
        "created": 2, "updated": 0, "unchanged": 1, "errors_total": 3, "dry_run": True}
    assert [(e["index"], e["line"], e["username"]) for e in dry.json()["errors"]] == [
        (3, 5, "NEW-1"), (4, 6, "short"), (5, 7, "three")]
    assert "row 1" in dry.json()["errors"][0]["message"]
    real = import_csv(api, deployment, body)
    assert real.status_code == 400 and real["Content-Type"] == "application/problem+json"
    assert set(real.json()["errors"]) == {"users[3]", "users[4]", "users[5]"}
    assert MqttUser.objects.filter(deployment=deployment).count() == 1

    good = import_csv(api, deployment, "\n".join(body.splitlines()[:4]) + "\n")
    assert good.status_code == 200, good.content
    assert (good.json()["created"], good.json()["unchanged"]) == (2, 1)
    hashed = MqttUser.objects.get(deployment=deployment, username="hashed")
    assert hashing.verify_password(hashing.PasswordHash(hashed.algorithm, hashed.password_hash, hashed.salt),
                                   "legacy-pass")
    assert AuditEvent.objects.filter(action="deployment.mqtt_user.import").count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(("body", "why"), [
    (b"", "non-empty"),
    (b"username,password\n\n", "non-empty"),
    (b"alice,caf\xe9-pass\n", "UTF-8"),
    (b"al\x00ice,nul-in-the-name\n", "username"),
])
def test_bad_csv_bodies_are_refused_and_change_nothing(api, deployment, body, why) -> None:
    response = import_csv(api, deployment, body)
    assert response.status_code == 400 and response["Content-Type"] == "application/problem+json", response.content
    assert why in str(response.json())
    assert not MqttUser.objects.filter(deployment=deployment).exists()


@pytest.mark.django_db
def test_a_body_over_the_limit_is_refused_before_it_is_read(api, deployment, monkeypatch) -> None:
    from deployments.api import mqtt_access

    monkeypatch.setattr(mqtt_access, "CSV_BODY_MAX_BYTES", 64)
    response = import_csv(api, deployment, "alice,secret-pass\n" * 10)
    assert response.status_code == 400 and "MiB" in response.json()["errors"]["users"][0]
    assert not MqttUser.objects.filter(deployment=deployment).exists()


def _counting(deployment: Deployment, count: int, pulled: list[int]) -> Iterator[dict[str, str]]:
    for index in range(count):
        pulled.append(MqttUser.objects.filter(deployment=deployment).count())
        yield {"username": f"device-{index}", "password_hash": LEGACY, "salt": "legacysalt",
               "algorithm": "pbkdf2_sha256"}


@pytest.mark.django_db
def test_rows_are_written_a_batch_at_a_time_as_they_are_read(deployment, org, monkeypatch) -> None:
    """Streaming: by the time a later row is read, the earlier batches are already in the table (the rows
    are never all held at once), and the whole import is still one change."""
    monkeypatch.setattr(imports, "BATCH", 4)
    pulled: list[int] = []
    result = imports.mqtt_users_import(principal=Principal.for_system(org), deployment=deployment,
                                       users=_counting(deployment, 10, pulled))
    assert (result.created, result.rows) == (10, 10)
    assert pulled == [0, 0, 0, 0, 4, 4, 4, 4, 8, 8]
    assert MqttAccess.objects.get(deployment=deployment).generation == 1


@pytest.mark.django_db
def test_a_bad_row_in_a_later_batch_undoes_the_batches_already_written(deployment, org, monkeypatch) -> None:
    monkeypatch.setattr(imports, "BATCH", 3)
    principal = Principal.for_system(org)
    users = [{"username": f"device-{index}", "password": "long-enough"} for index in range(7)]
    users.append({"username": "DEVICE-1", "password": "long-enough"})  # the same user as row 1, two batches on
    with pytest.raises(Exception) as refused:
        imports.mqtt_users_import(principal=principal, deployment=deployment, users=users)
    assert "users[7]" in refused.value.errors  # type: ignore[attr-defined]
    assert not MqttUser.objects.filter(deployment=deployment).exists()
    assert not MqttAccess.objects.filter(deployment=deployment, generation__gt=0).exists()


@pytest.mark.django_db
def test_more_rows_than_the_limit_are_refused_without_reading_on(deployment, org, monkeypatch) -> None:
    monkeypatch.setattr(imports, "BATCH", 2)
    monkeypatch.setattr(imports, "IMPORT_MAX", 5)
    pulled: list[int] = []
    with pytest.raises(Exception) as refused:
        imports.mqtt_users_import(principal=Principal.for_system(org), deployment=deployment,
                                  users=_counting(deployment, 1000, pulled))
    assert "At most 5 users" in str(refused.value.errors)  # type: ignore[attr-defined]
    assert len(pulled) == 6
    assert not MqttUser.objects.filter(deployment=deployment).exists()


@pytest.mark.django_db
def test_errors_listed_are_bounded_and_counted(deployment, org, monkeypatch) -> None:
    monkeypatch.setattr(imports, "ERRORS_LISTED", 3)
    result = imports.mqtt_users_import(principal=Principal.for_system(org), deployment=deployment,
                                       users=[{"username": f"d{index}", "password": "x"} for index in range(10)],
                                       dry_run=True)
    assert (len(result.errors), result.errors_total) == (3, 10)


@pytest.mark.django_db
def test_plain_passwords_hashed_on_threads_verify_as_the_broker_would(deployment, org) -> None:
    principal = Principal.for_system(org)
    users = [{"username": f"device-{index}", "password": f"password-{index}"} for index in range(40)]
    assert imports.mqtt_users_import(principal=principal, deployment=deployment, users=users).created == 40
    for user in MqttUser.objects.filter(deployment=deployment):
        index = user.username.split("-")[1]
        assert hashing.verify_password(hashing.PasswordHash(user.algorithm, user.password_hash, user.salt),
                                       f"password-{index}")
    again = imports.mqtt_users_import(principal=principal, deployment=deployment, users=users, dry_run=True)
    assert (again.unchanged, again.updated) == (40, 0)


@pytest.mark.django_db
def test_a_csv_body_is_accepted_from_a_console_session_with_its_csrf_token(org, deployment) -> None:
    """Session authentication checks the CSRF token, which makes Django look at the form data first: a CSV body
    must not be parsed (or refused as an unsupported media type) for that, nor read before the import."""
    from django.middleware.csrf import get_token
    from django.test import RequestFactory
    from rest_framework.test import APIClient

    from projects.tests.factories import MembershipFactory

    client = APIClient(enforce_csrf_checks=True)
    client.force_login(MembershipFactory(organization=org, role=Role.OWNER).user)
    request = RequestFactory().get("/")
    token = get_token(request)
    client.cookies["csrftoken"] = request.META["CSRF_COOKIE"]
    url = f"/api/v1/deployments/{deployment.id}/mqtt-users/import"
    refused = client.post(url, data=b"alice,secret-pass\n", content_type="text/csv")
    assert refused.status_code == 403  # no token: the CSRF check still applies
    response = client.post(url, data=b"alice,secret-pass\nbob,other-pass\n", content_type="text/csv",
                           HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200, response.content
    assert response.json()["created"] == 2
