"""The helpers every app's services share: hooks, enqueue-on-commit by task name, row locks, one-field errors."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from celery import shared_task
from django.db import transaction

from controlplane import errors
from controlplane.db import lock_row
from controlplane.hooks import Hook
from controlplane.queue import enqueue_on_commit
from projects.models import Organization
from tests.support import eager_tasks

SEEN: list[tuple] = []


@shared_task(name="controlplane.tests.record")
def record(*args: object, **kwargs: object) -> None:
    SEEN.append((args, kwargs))


def test_hook_sends_in_registration_order_and_collects_answers() -> None:
    hook = Hook("thing_deleted", "A thing was deleted; receivers get thing_id.")
    calls: list[str] = []

    def first(*, thing_id: str) -> str:
        calls.append(f"first {thing_id}")
        return "busy"

    def second(*, thing_id: str) -> None:
        calls.append(f"second {thing_id}")

    hook.register(first)
    hook.register(second)
    hook.register(first)  # a second registration (e.g. ready() run twice) changes nothing
    hook.send(thing_id="t1")
    assert calls == ["first t1", "second t1"]
    assert hook.collect(thing_id="t2") == ["busy"]
    assert hook.receivers == (first, second)


def test_hook_receiver_error_reaches_the_caller() -> None:
    hook = Hook("guarded", "")

    @hook.register
    def refuse() -> None:
        raise errors.Conflict("no")

    with pytest.raises(errors.Conflict):
        hook.send()


@pytest.mark.django_db(transaction=True)
def test_enqueue_on_commit_sends_the_named_task_only_after_commit() -> None:
    SEEN.clear()
    with eager_tasks():
        with transaction.atomic():
            enqueue_on_commit("controlplane.tests.record", 1, b=2)
            assert SEEN == []
        assert SEEN == [((1,), {"b": 2})]
        try:
            with transaction.atomic():
                enqueue_on_commit("controlplane.tests.record", 3)
                raise RuntimeError("rolled back")
        except RuntimeError:
            pass
        assert SEEN == [((1,), {"b": 2})]


@pytest.mark.django_db
def test_lock_row_filters_and_raises_does_not_exist() -> None:
    organization = Organization.objects.create(name="Acme")
    with transaction.atomic():
        assert lock_row(Organization, organization.pk) == organization
        assert lock_row(Organization.objects.all(), organization.pk, name="Acme") == organization
        with pytest.raises(Organization.DoesNotExist):
            lock_row(Organization, organization.pk, name="Other")


def test_field_invalid_puts_the_message_next_to_the_field() -> None:
    error = errors.field_invalid("cidr", "Overlaps 10.0.0.0/16.")
    assert (error.detail, error.errors) == ("Overlaps 10.0.0.0/16.", {"cidr": ["Overlaps 10.0.0.0/16."]})
    assert errors.field_invalid("name", "Too long.", detail="The request has invalid fields.").detail \
        == "The request has invalid fields."


def test_a_fresh_process_finds_tasks_it_never_imported() -> None:
    """The web process imports no app's tasks module; enqueueing by name must still find the task."""
    code = ("import django; django.setup(); from controlplane.queue import registered_task; "
            "print(registered_task('billing.tasks.invoice_collect').name)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "DJANGO_SETTINGS_MODULE": "controlplane.settings"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "billing.tasks.invoice_collect"


def test_parallel_first_enqueues_all_find_their_task() -> None:
    """Many request threads enqueue at once in a process that imported no tasks module (make run's web server):
    every one finds the task, although Celery's autodiscovery does nothing while another thread is in it."""
    code = """
import threading, django
django.setup()
from controlplane.queue import registered_task
names, errors, start = [], [], threading.Barrier(8)
def find():
    start.wait()
    try:
        names.append(registered_task("deployments.tasks.deployment_converge").name)
    except Exception as exc:
        errors.append(repr(exc))
threads = [threading.Thread(target=find) for _ in range(8)]
[t.start() for t in threads]
[t.join() for t in threads]
print(len(names), errors)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "DJANGO_SETTINGS_MODULE": "controlplane.settings"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "8 []"
