"""Parallel clicks against a running `make run`: what a curious user does with two browser tabs and a script.

Runs against the embedded default on loopback only (it refuses any other base URL), with bounded loops, and
prints every answer's status per step. Exit 1 when any answer is a 5xx other than 503 (a lock the server
could not wait out, which must come with Retry-After), or an /api/v1 answer is not JSON.

    make run &                      # in one terminal
    .venv/bin/python bin/stress_embedded.py [--base http://127.0.0.1:8000] [--parallel 20]

Afterwards, the server log must hold no 'Internal Server Error' and no 'raised unexpected'.
"""

from __future__ import annotations

import argparse
import ipaddress
import re
import sys
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from projects.demo import DEMO_EMAIL, DEMO_PASSWORD  # noqa: E402  (plain constants; no Django set up)


def loopback_only(base: str) -> str:
    host = urlsplit(base).hostname or ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise SystemExit(f"refusing {base}: this script only talks to loopback addresses")
    return base.rstrip("/")


class Run:
    def __init__(self, base: str, parallel: int) -> None:
        self.base = base
        self.parallel = parallel
        self.bad: list[str] = []

    def record(self, step: str, responses: list[requests.Response]) -> list[requests.Response]:
        counts = Counter(r.status_code for r in responses)
        print(f"{step:<40} {dict(sorted(counts.items()))}", flush=True)
        for r in responses:
            if r.status_code >= 500 and r.status_code != 503:
                self.bad.append(f"{step}: {r.status_code} {r.request.method} {r.url}")
            if r.status_code == 503 and "Retry-After" not in r.headers:
                self.bad.append(f"{step}: 503 without Retry-After on {r.url}")
            if "/api/v1/" in r.url and r.status_code >= 400 and "json" not in r.headers.get("Content-Type", ""):
                self.bad.append(f"{step}: {r.status_code} is not problem+json on {r.url}")
        return responses

    def together(self, step: str, calls: list) -> list[requests.Response]:
        with ThreadPoolExecutor(max_workers=len(calls)) as pool:
            return self.record(step, list(pool.map(lambda call: call(), calls)))


def console_session(base: str, email: str, password: str) -> requests.Session:
    session = requests.Session()
    session.get(f"{base}/console/login", timeout=30)
    response = session.post(f"{base}/console/login", timeout=30, allow_redirects=False, data={
        "email": email, "password": password, "csrfmiddlewaretoken": session.cookies.get("csrftoken", "")},
        headers={"Referer": f"{base}/console/login"})
    if response.status_code != 302:
        raise SystemExit(f"console login as {email} answered {response.status_code}; is this a fresh `make run`?")
    return session


def api(session: requests.Session, base: str) -> dict[str, str]:
    return {"X-CSRFToken": session.cookies.get("csrftoken", ""), "Referer": f"{base}/console/"}


def invitation_token(email: str, deadline: float) -> str:
    """The token of the newest invitation mailed to ``email``, from the outbox `make run` writes."""
    while time.monotonic() < deadline:
        for path in sorted((ROOT / "var" / "outbox").glob("*"), key=lambda p: p.stat().st_mtime, reverse=True):
            text = path.read_text(errors="replace")
            if email in text:
                match = re.search(r"/console/invitations/([A-Za-z0-9_\-.:]+)", text)
                if match:
                    return match.group(1)
        time.sleep(0.5)
    raise SystemExit(f"no invitation mail to {email} reached var/outbox")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="http://127.0.0.1:8000")
    parser.add_argument("--parallel", type=int, default=20)
    parser.add_argument("--wait-running", type=float, default=180.0, help="seconds to wait for deployments")
    parser.add_argument("--keep", type=int, default=0,
                        help="leave this many deployments running (for a soak of the beat jobs afterwards)")
    args = parser.parse_args()
    base = loopback_only(args.base)
    n = max(2, min(args.parallel, 50))
    run = Run(base, n)
    owner = console_session(base, DEMO_EMAIL, DEMO_PASSWORD)
    h = api(owner, base)
    tag = uuid.uuid4().hex[:6]

    def post(path: str, body: dict | None = None, session: requests.Session = owner):
        return lambda: session.post(f"{base}/api/v1{path}", json=body or {}, headers=api(session, base), timeout=60)

    run.together("console pages x N", [
        (lambda p=p: owner.get(f"{base}/console/{p}", timeout=60))
        for p in (["", "deployments", "members", "api-keys", "audit", "alerts", "alerts/rules"] * n)[:n]])
    names = [f"stress-{tag}-{i % (n // 2)}" for i in range(n)]  # every name twice: half must be 409
    projects = run.together("create projects (names twice)", [post("/projects", {"name": name}) for name in names])
    project = next(r.json()["id"] for r in projects if r.status_code == 201)
    spec = next(s for s in owner.get(f"{base}/api/v1/specs", timeout=30).json()["results"] if s["tier"] == "basic")
    region = next(r for r in owner.get(f"{base}/api/v1/regions", timeout=30).json()["results"]
                  if "basic" in r["tiers"])
    created = run.together("create deployments", [post("/deployments", {
        "project": project, "name": f"dep-{tag}-{i}", "region": region["id"], "spec": spec["id"]}) for i in range(n)])
    run.together("create one name at once", [post("/deployments", {
        "project": project, "name": f"twin-{tag}", "region": region["id"], "spec": spec["id"]}) for _ in range(n)])

    email = f"stress-{tag}@example.test"
    run.together("invite", [post("/invitations", {"email": email, "role": "developer", "projects": []})])
    token = invitation_token(email, time.monotonic() + 60)
    run.together("accept one invitation at once", [
        post("/invitations/accept", {"token": token, "password": f"Stress-{tag}-password"},
             session=requests.Session()) for _ in range(n)])

    deployment_ids = [r.json()["id"] for r in created if r.status_code == 202]
    deadline = time.monotonic() + args.wait_running
    while time.monotonic() < deadline:
        statuses = Counter(owner.get(f"{base}/api/v1/deployments/{d}", timeout=30).json()["status"]
                           for d in deployment_ids)
        if statuses.get("running", 0) == len(deployment_ids):
            break
        time.sleep(3)
    print(f"{'deployments after waiting':<40} {dict(statuses)}", flush=True)
    deployment_ids = deployment_ids[max(0, args.keep):]
    run.together("stop each deployment twice", [post(f"/deployments/{d}/stop") for d in deployment_ids * 2][: 2 * n])
    run.together("delete them", [
        (lambda d=d: owner.delete(f"{base}/api/v1/deployments/{d}", headers=h, timeout=60)) for d in deployment_ids])
    if run.bad:
        print("\n".join(["FAILED:", *run.bad[:40]]))
        return 1
    print("every answer was 2xx/4xx or a 503 with Retry-After")
    return 0


if __name__ == "__main__":
    sys.exit(main())
