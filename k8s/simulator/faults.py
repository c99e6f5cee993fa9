"""Fault injection: the failures a real cluster produces at the worst moment (5xx from an overloaded API
server, 429 throttling, slow responses, pods that never become ready), on demand and reproducibly."""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass
from typing import Any

from .errors import ApiError


@dataclass
class FaultRule:
    id: int
    verb: str = "*"  # get, list, watch, create, update, patch, delete, deletecollection
    resource: str = "*"  # a plural ("statefulsets") or plural/subresource ("statefulsets/scale")
    namespace: str = "*"
    status: int | None = 500  # None: only slow the request down
    rate: float = 1.0
    remaining: int | None = None  # None: forever; otherwise the rule retires after this many hits
    latency_s: float = 0.0
    message: str = "injected by the mqcloud simulator"
    # Sent as Retry-After. Off by default: urllib3 (under the official client) silently retries 429/503
    # answers that carry the header, which would hide the fault from the code under test.
    retry_after_s: int | None = None

    def matches(self, verb: str, resource: str, namespace: str | None) -> bool:
        return (self.verb in ("*", verb) and self.resource in ("*", resource, resource.split("/")[0])
                and self.namespace in ("*", namespace))


class FaultInjector:
    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._next_id = 1
        # A seeded generator makes "50% of PATCHes fail" the same sequence on every test run.
        self._random = random.Random(seed)  # noqa: S311 - test randomness, not security
        self._blocked: set[tuple[str, str]] = set()
        self._blocked_images: set[tuple[str, str, int | None]] = set()

    def add(self, *, verb: str = "*", resource: str = "*", namespace: str = "*", status: int | None = 500,
            rate: float = 1.0, count: int | None = None, latency_s: float = 0.0, message: str | None = None,
            retry_after_s: int | None = None) -> FaultRule:
        with self._lock:
            rule = FaultRule(self._next_id, verb.lower(), resource, namespace, status, rate, count, latency_s,
                             retry_after_s=retry_after_s)
            if message:
                rule.message = message
            self._next_id += 1
            self._rules.append(rule)
            return rule

    def fail_next(self, count: int, *, status: int = 500, verb: str = "*", resource: str = "*",
                  retry_after_s: int | None = None) -> FaultRule:
        return self.add(verb=verb, resource=resource, status=status, count=count, retry_after_s=retry_after_s)

    def add_latency(self, seconds: float, *, verb: str = "*", resource: str = "*") -> FaultRule:
        return self.add(verb=verb, resource=resource, status=None, latency_s=seconds)

    def remove(self, rule_id: int) -> None:
        with self._lock:
            self._rules = [r for r in self._rules if r.id != rule_id]

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            self._blocked.clear()
            self._blocked_images.clear()

    def rules(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(r) for r in self._rules]

    def decide(self, verb: str, resource: str, namespace: str | None) -> tuple[float, ApiError | None]:
        """The latency to add to a request and the error to answer it with, if any."""
        latency, error = 0.0, None
        with self._lock:
            for rule in list(self._rules):
                if not rule.matches(verb, resource, namespace) or self._random.random() >= rule.rate:
                    continue
                latency += rule.latency_s
                if rule.status is None or error is not None:
                    continue
                details = {"retryAfterSeconds": rule.retry_after_s} if rule.retry_after_s is not None else None
                error = ApiError(rule.status, rule.message, details=details)
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self._rules.remove(rule)
        return latency, error

    # Pods whose readiness probe "fails": created and running, never Ready (a crash-looping broker).
    def block_readiness(self, namespace: str, prefix: str = "") -> None:
        with self._lock:
            self._blocked.add((namespace, prefix))

    def unblock_readiness(self, namespace: str, prefix: str = "") -> None:
        with self._lock:
            self._blocked.discard((namespace, prefix))

    # A broken release: pods running `image` (only the one of `ordinal`, if given) never become Ready, while
    # the same pods on another image do: what an upgrade must detect and roll back.
    def block_image_readiness(self, namespace: str, image: str, *, ordinal: int | None = None) -> None:
        with self._lock:
            self._blocked_images.add((namespace, image, ordinal))

    def unblock_image_readiness(self, namespace: str, image: str, *, ordinal: int | None = None) -> None:
        with self._lock:
            self._blocked_images.discard((namespace, image, ordinal))

    def readiness_blocked(self, namespace: str, pod: str, image: str = "") -> bool:
        ordinal = pod.rpartition("-")[2]
        with self._lock:
            return any(ns == namespace and pod.startswith(prefix) for ns, prefix in self._blocked) or any(
                ns == namespace and blocked == image and (at is None or str(at) == ordinal)
                for ns, blocked, at in self._blocked_images)
