"""Hooks: how a lower app lets higher apps react to its events without importing them.

The app that owns an event declares a ``Hook`` in its ``hooks`` module (``projects.hooks.project_deleted``);
an app above it registers a receiver in its ``AppConfig.ready`` (``alerts`` moves its organization rules away
from a deleted project). Receivers run synchronously, in registration order, inside the caller's transaction,
so a receiver that raises rolls the whole change back. ``collect`` returns what receivers answered, which is
how a guard hook works: ``deployments`` answers why a project cannot be deleted yet.

Unlike Django signals, a hook has a fixed keyword signature documented where it is declared, receivers are
module-level functions (no weak references to lose), and registering the same function twice is a no-op.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Hook:
    def __init__(self, name: str, doc: str) -> None:
        self.name = name
        self.__doc__ = doc
        self._receivers: list[Callable[..., Any]] = []

    def register(self, receiver: Callable[..., Any]) -> Callable[..., Any]:
        """Adds ``receiver`` (usable as a decorator); registering it again changes nothing."""
        if receiver not in self._receivers:
            self._receivers.append(receiver)
        return receiver

    def send(self, **kwargs: Any) -> None:
        """Calls every receiver with ``kwargs``."""
        for receiver in self._receivers:
            receiver(**kwargs)

    def collect(self, **kwargs: Any) -> list[Any]:
        """Calls every receiver with ``kwargs`` and returns the answers that are not ``None``."""
        answers = (receiver(**kwargs) for receiver in self._receivers)
        return [answer for answer in answers if answer is not None]

    @property
    def receivers(self) -> tuple[Callable[..., Any], ...]:
        return tuple(self._receivers)

    def __repr__(self) -> str:
        return f"<Hook {self.name}: {len(self._receivers)} receivers>"
