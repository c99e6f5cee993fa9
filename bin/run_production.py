#!/usr/bin/env python
"""`make run-production`: the production profile on one machine, everything on loopback.

What the Kubernetes overlays run, as processes here and through the image's entrypoint: gunicorn with
deploy/gunicorn.conf.py (`container-entrypoint web`), one Celery worker per queue (`worker QUEUE`), beat with
RedBeat's lock (`beat`; BEAT_REPLICAS=2 runs a standby as the `ha` overlay does), after `migrate`,
`sync-catalog` and `collectstatic`. Around them: PostgreSQL (DATABASE_URL, default the local server's database
`mqcloud_production`, created when missing), a Redis of its own with an append-only file under
var/production/redis (or REDIS_URL), the simulated Kubernetes cluster and clouds, and an SMTP sink that prints
every mail. Secrets come from the environment or, unset, from files made once under var/production/secrets
(SECRET_KEY_FILE, FIELD_ENCRYPTION_KEYS_FILE). LOOPBACK_STANDINS=1 allows plain HTTP and loopback receivers;
the settings refuse it for a host that is not loopback. Nothing started here talks to a host off the machine.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from controlplane.local_run import ProcessGroup, ProductionRun, RedisServer, free_port  # noqa: E402


def main() -> int:
    var = Path(os.environ.get("MQCLOUD_PRODUCTION_VAR_DIR") or ROOT / "var" / "production")
    redis = None if os.environ.get("REDIS_URL") else RedisServer(var / "redis").start()
    smtp_port = free_port()
    run = ProductionRun(
        var=var,
        database_url=os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/mqcloud_production",
        redis_url=os.environ.get("REDIS_URL") or (redis.url if redis else ""),
        smtp_port=smtp_port,
        port=int(os.environ.get("PORT") or 8100),
        beats=int(os.environ.get("BEAT_REPLICAS") or 1),
    )
    sink = ProcessGroup(env=run.env)
    try:
        # aiosmtpd's command line with its Debugging handler: every mail is printed here.
        sink.start("smtp", [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{smtp_port}"])
        run.start_simulators()
        run.prepare()
        run.start()
        print(
            "\n"
            "  mqcloud is running on the production profile (gunicorn, a Celery worker per queue, RedBeat beat)\n"
            f"  console:  {run.url}/console/   (sign up there, or POST {run.url}/api/v1/signup)\n"
            f"  ops site: {run.url}/ops/       (container-entrypoint manage createsuperuser, same environment)\n"
            f"  database: {run.database_url}   redis: {run.redis_url}   mail: printed here (SMTP :{smtp_port})\n"
            f"  simulated Kubernetes cluster: {run.simulators.env()['KUBERNETES_SIMULATOR_URL']}\n"
            "  Ctrl-C stops everything.\n",
            flush=True,
        )
        return run.processes.supervise()
    finally:
        run.processes.stop_all()
        sink.stop_all()
        if redis is not None:
            redis.stop()


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
