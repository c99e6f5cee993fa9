"""``Idempotency-Key`` on POST: a repeat with the same body gets the first response; another body, 422."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.response import Response

from controlplane import errors
from controlplane.api.problems import PROBLEM_CONTENT_TYPE
from controlplane.models import IdempotencyRecord

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255


class IdempotencyInProgress(errors.Conflict):
    title = "Request in progress"
    type_slug = "idempotency-in-progress"


@dataclass
class Replay(Exception):
    """Raised to short-circuit a view with the stored first response."""

    response: Response


def fingerprint(method: str, path: str, data: object) -> str:
    canonical = json.dumps(data, sort_keys=True, cls=DjangoJSONEncoder, separators=(",", ":"))
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


def idempotency_begin(*, scope: str, key: str, method: str, path: str, data: object) -> IdempotencyRecord:
    """Claims the key for this request, or raises :class:`Replay` / 409 / 422 for a repeat."""
    if not key or len(key) > MAX_KEY_LENGTH:
        raise errors.ValidationFailed(
            f"{HEADER} must be 1 to {MAX_KEY_LENGTH} characters.", errors={HEADER: ["Invalid length."]}
        )
    if not (key.isascii() and key.isprintable()):
        # Control characters (NUL above all) cannot be stored and are never part of a sensible key.
        raise errors.ValidationFailed(
            f"{HEADER} must be printable ASCII.", errors={HEADER: ["Use printable ASCII characters."]}
        )
    request_fp = fingerprint(method, path, data)
    expired_before = timezone.now() - timedelta(seconds=settings.IDEMPOTENCY_TTL_SECONDS)
    IdempotencyRecord.objects.filter(scope=scope, key=key, created_at__lt=expired_before).delete()
    try:
        with transaction.atomic():
            return IdempotencyRecord.objects.create(
                scope=scope, key=key, method=method, path=path[:512], request_fingerprint=request_fp
            )
    except IntegrityError:
        pass
    existing = IdempotencyRecord.objects.get(scope=scope, key=key)
    if existing.request_fingerprint != request_fp:
        raise errors.IdempotencyMismatch(
            f"This {HEADER} was used for a different request; use a new key for a new request."
        )
    if existing.status_code is None:
        raise IdempotencyInProgress(f"A request with this {HEADER} is still being handled; retry shortly.")
    body = json.loads(existing.response_body) if existing.response_body else None
    # A replayed error is still a problem document.
    content_type = PROBLEM_CONTENT_TYPE if existing.status_code >= 400 else None
    response = Response(body, status=existing.status_code, headers={"Idempotent-Replayed": "true"},
                        content_type=content_type)
    raise Replay(response)


def idempotency_complete(record: IdempotencyRecord, response: Response) -> None:
    if response.status_code >= 500:
        # The first attempt failed on our side: let the client retry with the same key.
        record.delete()
        return
    body = json.dumps(response.data, cls=DjangoJSONEncoder) if response.data is not None else ""
    record.status_code = response.status_code
    record.response_body = body
    record.completed_at = timezone.now()
    record.save(update_fields=["status_code", "response_body", "completed_at"])


def idempotency_records_purge() -> int:
    expired_before = timezone.now() - timedelta(seconds=settings.IDEMPOTENCY_TTL_SECONDS)
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=expired_before).delete()
    return deleted
