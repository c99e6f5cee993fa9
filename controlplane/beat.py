"""Beat's scheduler: RedBeat, whose Redis lock lets exactly one replica schedule (controlplane.queues).

celery-redbeat 2.4.2 takes the lock in a ``beat_init`` handler whose errors Celery swallows; a standby replica
still waiting for the lock when Redis goes away (a restart, a failover) is left without one and crashes on its
first tick. This one keeps waiting for the lock instead, through the outage, as the standby it is; and the holder
rides out an outage shorter than the lock's timeout (it tries again next loop) instead of exiting. An outage longer
than that lets the lock lapse: the holder then finds it owned by nobody or by the standby, and exits as before.
"""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace
from typing import Any

from redbeat.schedulers import RedBeatScheduler, acquire_distributed_beat_lock
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)


class LockWaitingRedBeatScheduler(RedBeatScheduler):
    def tick(self, *args: Any, **kwargs: Any) -> float:
        while self.lock_key and self.lock is None:
            try:
                acquire_distributed_beat_lock(sender=SimpleNamespace(scheduler=self))
            except (RedisConnectionError, RedisTimeoutError) as exc:
                logger.warning("beat: Redis unreachable while waiting for the schedule lock (%s); waiting on", exc)
                time.sleep(self.max_interval)
        try:
            return super().tick(*args, **kwargs)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            logger.warning("beat: Redis unreachable (%s); trying again in %s s", exc, self.max_interval)
            return self.max_interval
