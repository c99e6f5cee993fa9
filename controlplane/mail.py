"""The embedded default's outbox: mail is written to ``var/outbox/`` as .eml files, and the console
shows it, so nothing ever leaves the machine."""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend
from django.utils.crypto import get_random_string


class OutboxEmailBackend(BaseEmailBackend):
    def send_messages(self, email_messages) -> int:
        outbox = Path(settings.EMAIL_FILE_PATH)
        outbox.mkdir(parents=True, exist_ok=True)
        sent = 0
        for message in email_messages:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
            path = outbox / f"{stamp}-{get_random_string(6)}.eml"
            path.write_bytes(message.message().as_bytes())
            sent += 1
        return sent


@dataclass
class OutboxMessage:
    name: str
    sent_at: datetime
    subject: str
    to: str
    text: str


def outbox_messages(limit: int = 50) -> list[OutboxMessage]:
    outbox = Path(getattr(settings, "EMAIL_FILE_PATH", "") or "")
    if not outbox.is_dir():
        return []
    messages = []
    for path in sorted(outbox.glob("*.eml"), reverse=True)[:limit]:
        parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        body = parsed.get_body(preferencelist=("plain", "html"))
        messages.append(
            OutboxMessage(
                name=path.name,
                sent_at=datetime.fromtimestamp(path.stat().st_mtime, UTC),
                subject=str(parsed["Subject"] or ""),
                to=str(parsed["To"] or ""),
                text=body.get_content() if body is not None else "",
            )
        )
    return messages
