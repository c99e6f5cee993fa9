"""The Celery application: configuration comes from Django settings prefixed ``CELERY_``."""

import os
from pathlib import Path
from typing import Any

from celery import Celery, bootsteps

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")

app = Celery("mqcloud")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


class LivenessHeartbeat(bootsteps.StartStopStep):
    """Touches ``WORKER_HEARTBEAT_FILE`` every few seconds from the worker's own timer, so a liveness probe
    (bin/container-entrypoint healthcheck) sees a worker whose event loop hangs, which a process check cannot.
    Off unless the variable is set (the image's worker pods set it)."""

    requires = ("celery.worker.components:Timer",)
    interval_s = 10.0

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        self.path = Path(os.environ["WORKER_HEARTBEAT_FILE"]) if os.environ.get("WORKER_HEARTBEAT_FILE") else None
        self.tref: Any = None

    def start(self, worker: Any) -> None:
        if self.path is not None:
            self.path.touch()
            self.tref = worker.timer.call_repeatedly(self.interval_s, self.path.touch, (), priority=10)

    def stop(self, worker: Any) -> None:
        if self.tref is not None:
            self.tref.cancel()
        if self.path is not None:
            self.path.unlink(missing_ok=True)


app.steps["worker"].add(LivenessHeartbeat)
