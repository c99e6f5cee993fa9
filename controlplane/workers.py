"""What every long-running worker (provisioning, peering) answers after one pass."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    """What the worker should do next: look again in ``again_in`` seconds, or nothing (``None``)."""

    again_in: float | None
    note: str = ""


DONE = Step(None)
