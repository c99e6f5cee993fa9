"""Run by tests/test_embedded_default.py in a child process: concurrent writes against `make run`'s web server.

Sets the embedded default up (SQLite), starts the web server exactly as ``bin/run_embedded.py`` does
(``manage.py runserver``, threaded), then fires 20 parallel requests at once, several times: accepts of one
invitation, creates of deployments (distinct names and one name), stops of one deployment. Every answer must be
2xx, 409 or 503 (with ``Retry-After``), never a 500, and the server's log must hold no traceback. Prints one line
per failure and exits 1 if there was any.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
PARALLEL = 20
# Every server started, so that none outlives this script, however it ends.
LAUNCHED: list[subprocess.Popen] = []


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def burst(name: str, send, failures: list[str], allowed: set[int]) -> list[int]:
    """``PARALLEL`` requests released at the same instant; returns their statuses."""
    barrier = threading.Barrier(PARALLEL)

    def one(index: int) -> requests.Response:
        barrier.wait(timeout=30)
        return send(index)

    with ThreadPoolExecutor(PARALLEL) as pool:
        responses = list(pool.map(one, range(PARALLEL)))
    statuses = [r.status_code for r in responses]
    for response in responses:
        if response.status_code not in allowed:
            failures.append(f"{name}: {response.status_code} {response.text[:300]}")
        elif response.status_code == 503 and (not response.headers.get("Retry-After")
                                              or response.headers.get("Content-Type") != "application/problem+json"):
            failures.append(f"{name}: 503 without Retry-After or problem+json: {response.headers}")
    print(f"{name}: {sorted(statuses)}")
    return statuses


def launch_server(log_path: Path, **extra_env: str) -> tuple[subprocess.Popen, str, Path]:
    """``manage.py runserver`` as `make run` starts it: (process, base URL, log path), not waiting for it."""
    port = free_port()
    with log_path.open("w") as log:
        server = subprocess.Popen([sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
                                  cwd=ROOT, env={**os.environ, **extra_env}, stdout=log, stderr=subprocess.STDOUT)
    LAUNCHED.append(server)
    return server, f"http://127.0.0.1:{port}", log_path


def serving(launched: tuple[subprocess.Popen, str, Path]):
    """The launched server's (process, base URL, log path) once it answers; (None, ...) if it never did."""
    server, base, log_path = launched
    deadline = time.monotonic() + 60
    while True:
        try:
            if requests.get(f"{base}/healthz", timeout=2).status_code == 200:
                return server, base, log_path
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            server.kill()
            print("the web server did not start")
            print(log_path.read_text()[-3000:])
            return None, base, log_path
        time.sleep(0.2)


def server_log_failures(log_path: Path, label: str) -> list[str]:
    """A 500 or a traceback in the server's log fails the run even when every answer looked right."""
    log_text = log_path.read_text()
    return [f"{label} holds {marker!r}" for marker in ("Traceback", '" 500 ', "Internal Server Error")
            if marker in log_text]


def locked_database_answers_503(database: str, launched: tuple[subprocess.Popen, str, Path],
                                secret: str) -> list[str]:
    """Through ``launched``, a server whose busy timeout is 1 s."""
    from projects.demo import DEMO_EMAIL, DEMO_PASSWORD

    failures: list[str] = []
    server, base, log_path = serving(launched)
    if server is None:
        return ["the web server did not start"]
    console = requests.Session()
    try:
        console.get(f"{base}/console/login", timeout=30)
        console.post(f"{base}/console/login", data={"email": DEMO_EMAIL, "password": DEMO_PASSWORD,
                                                    "csrfmiddlewaretoken": console.cookies["csrftoken"]}, timeout=30)
        form = console.get(f"{base}/console/projects/new", timeout=30)
        if form.status_code != 200:
            return [f"console login failed: {form.status_code} {form.url}"]
        holder = sqlite3.connect(database, timeout=30)
        holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock for longer than the busy timeout
        try:
            api = requests.post(f"{base}/api/v1/projects", json={"name": "while-locked"}, timeout=60,
                                headers={"Authorization": f"Bearer {secret}"})
            page = console.post(f"{base}/console/projects/new", timeout=60, data={
                "name": "while-locked", "csrfmiddlewaretoken": console.cookies["csrftoken"]},
                headers={"Referer": f"{base}/console/projects/new"})
        finally:
            holder.rollback()
            holder.close()
        if (api.status_code, api.headers.get("Content-Type")) != (503, "application/problem+json") or \
                not api.headers.get("Retry-After") or api.json().get("status") != 503:
            failures.append(f"API write while locked: {api.status_code} {api.headers} {api.text[:300]}")
        if page.status_code != 503 or not page.headers.get("Retry-After") or "error-card" not in page.text:
            failures.append(f"console write while locked: {page.status_code} {page.headers} {page.text[:300]}")
        after = requests.post(f"{base}/api/v1/projects", json={"name": "after-the-lock"}, timeout=60,
                              headers={"Authorization": f"Bearer {secret}"})
        if after.status_code != 201:
            failures.append(f"API write after the lock: {after.status_code} {after.text[:300]}")
    finally:
        server.terminate()
        server.wait(timeout=20)
    failures += server_log_failures(log_path, "the locked server's log")
    return failures


def main() -> int:
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    assert settings.EMBEDDED and connection.vendor == "sqlite", (settings.PROFILE, connection.vendor)
    for folder in ("celery-queue", "celery-processed"):  # as bin/run_embedded.py makes them
        (Path(settings.VAR_DIR) / folder).mkdir(parents=True, exist_ok=True)
    for command in (("migrate", "--noinput", "-v", "0"), ("createcachetable",), ("sync_catalog",), ("seed_demo",)):
        call_command(*command)
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        journal = cursor.fetchone()[0]
    options = settings.DATABASES["default"]["OPTIONS"]
    if journal != "wal" or options.get("transaction_mode") != "IMMEDIATE" or options.get("timeout", 5) < 10:
        print(f"SQLite is not in WAL mode with immediate transactions and a busy timeout: {journal} {options}")
        return 1

    from deployments.tests.factories import DeploymentFactory
    from projects.models import Organization, Project
    from projects.roles import Role
    from projects.tests.factories import InvitationFactory, make_api_key

    org = Organization.objects.order_by("created_at").first()
    project = Project.objects.filter(organization=org).first()
    _, secret = make_api_key(org, role=Role.OWNER)
    running = [DeploymentFactory(organization=org, project=project, name=f"steady-{n}") for n in range(3)]
    invitations = [InvitationFactory(organization=org, email=f"racer{n}@example.com") for n in range(3)]
    connection.close()

    failures: list[str] = []
    # The second server (a short busy timeout, for the locked database below) starts with the first: it only
    # waits meanwhile, and its start no longer comes after the bursts.
    locked_server = launch_server(Path(settings.VAR_DIR) / "web-locked.log", SQLITE_BUSY_TIMEOUT_S="1")
    server, base, log_path = serving(launch_server(Path(settings.VAR_DIR) / "web.log"))
    if server is None:
        return 1
    try:
        api = requests.Session()
        api.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=PARALLEL))
        api.headers["Authorization"] = f"Bearer {secret}"
        ok = {200, 201, 202, 409, 503}
        for round_, invitation in enumerate(invitations):
            token = invitation.token_encrypted
            statuses = burst(f"accept one invitation #{round_}", lambda i, t=token: requests.post(
                f"{base}/api/v1/invitations/accept", json={"token": t, "password": "racing-pass-2026!"}, timeout=120),
                failures, ok)
            if sum(200 <= s < 300 for s in statuses) > 1:
                failures.append(f"one invitation accepted {statuses.count(201) + statuses.count(200)} times")
        for round_ in range(2):
            burst(f"create distinct #{round_}", lambda i, r=round_: api.post(f"{base}/api/v1/deployments", json={
                "project": project.id, "name": f"fleet-{r}-{i}", "region": "aws-us-east-1", "spec": "basic-1k"},
                timeout=120), failures, ok)
            statuses = burst(f"create one name #{round_}", lambda i, r=round_: api.post(
                f"{base}/api/v1/deployments", json={"project": project.id, "name": f"same-{r}",
                                                    "region": "aws-us-east-1", "spec": "basic-1k"}, timeout=120),
                failures, ok)
            if sum(200 <= s < 300 for s in statuses) > 1:
                failures.append(f"one name created {statuses.count(202)} times")
        for deployment in running:
            statuses = burst(f"stop {deployment.name}", lambda i, d=deployment.id: api.post(
                f"{base}/api/v1/deployments/{d}/stop", timeout=120), failures, ok)
            if sum(200 <= s < 300 for s in statuses) > 1:
                failures.append(f"one deployment stopped {statuses.count(202)} times")
    finally:
        server.terminate()
        server.wait(timeout=20)
    failures += server_log_failures(log_path, "the server log")

    # A write that cannot get the lock within the busy timeout (here another process holds it) is a 503 with
    # Retry-After: problem+json under /api/v1, the console's error page in the console.
    failures += locked_database_answers_503(settings.DATABASES["default"]["NAME"], locked_server, secret)
    for failure in failures:
        print(failure)
    return 1 if failures else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        for launched in LAUNCHED:
            if launched.poll() is None:
                launched.kill()
