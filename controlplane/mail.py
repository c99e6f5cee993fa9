"""The embedded default's outbox: mail is written to ``var/outbox/`` as .eml files, and the console
shows it, so nothing ever leaves the machine."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import getaddresses
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend
from django.utils.crypto import get_random_string

if TYPE_CHECKING:
    from django.core.mail import EmailMessage


class OutboxEmailBackend(BaseEmailBackend):
    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        outbox = Path(settings.EMAIL_FILE_PATH)
        outbox.mkdir(parents=True, exist_ok=True)
        sent = 0
        for message in email_messages:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
            path = outbox / f"{stamp}-{get_random_string(6)}.eml"
            path.write_bytes(message.message().as_bytes())
            sent += 1
        return sent


@dataclass(frozen=True)
class OutboxMessage:
    name: str
    sent_at: datetime
    subject: str
    to: str
    text: str
    # Lower-cased addresses of To and Cc: who the mail is for.
    recipients: tuple[str, ...] = ()


# Enough for any reader of the embedded default; older mail stays on disk for the ops site's larger window.
SCAN_LIMIT = 2000


def outbox_messages(limit: int = 50, *, include: Callable[[OutboxMessage], bool] | None = None,
                    scan: int = SCAN_LIMIT) -> list[OutboxMessage]:
    """The newest ``limit`` messages that ``include`` accepts (all when None), among the newest ``scan`` files."""
    outbox = Path(getattr(settings, "EMAIL_FILE_PATH", "") or "")
    if not outbox.is_dir():
        return []
    messages = []
    for path in sorted(outbox.glob("*.eml"), reverse=True)[:scan]:
        message = _read(path)
        if include is None or include(message):
            messages.append(message)
            if len(messages) >= limit:
                break
    return messages


def _read(path: Path) -> OutboxMessage:
    parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    body = parsed.get_body(preferencelist=("plain", "html"))
    addressed = getaddresses([str(value) for value in (*parsed.get_all("To", []), *parsed.get_all("Cc", []))])
    return OutboxMessage(
        name=path.name,
        sent_at=datetime.fromtimestamp(path.stat().st_mtime, UTC),
        subject=str(parsed["Subject"] or ""),
        to=str(parsed["To"] or ""),
        text=body.get_content() if body is not None else "",
        recipients=tuple(dict.fromkeys(address.lower() for _, address in addressed if address)),
    )


# --- one-time links ---------------------------------------------------------------------------------
# Mail carries credentials in links (invitations, password resets, whatever comes next). Rather than
# knowing every route, any part of a link that looks like a secret is masked, so a new kind of link is
# covered the day it is added; what a reader may see in clear is the caller's decision (``reveal``).
SECRET_MASK = "***"
_URL_RE = re.compile(r"""https?://[^\s<>"'`]+""", re.IGNORECASE)
_TRAILING = ".,;:!?)]}"
_OPAQUE_ID_RE = re.compile(r"^[a-z]{3}_[a-z0-9]{8,28}$")  # controlplane.ids: names an object, proves nothing
_WORDS_RE = re.compile(r"^[a-z-]+$")
_SECRET_PARAM_RE = re.compile(r"token|secret|key|code|sig|password|passwd|reset|otp|auth|nonce|hash", re.IGNORECASE)
_MIN_TOKEN_LENGTH = 16


def looks_like_secret(value: str) -> bool:
    """Long, and neither one of our object ids nor a slug of words. Whatever the alphabet: signed values carry
    ``:``, JWTs ``.``, base64 ``+/=``; a date or a long name masked by mistake costs little."""
    return len(value) >= _MIN_TOKEN_LENGTH and not _OPAQUE_ID_RE.match(value) and not _WORDS_RE.match(value)


def _mask_params(raw: str) -> str:
    pairs = []
    for pair in raw.split("&"):
        name, sep, value = pair.partition("=")
        if sep and value and (_SECRET_PARAM_RE.search(name) or looks_like_secret(value)):
            value = SECRET_MASK
        elif not sep and looks_like_secret(name):
            name = SECRET_MASK
        pairs.append(f"{name}{sep}{value}")
    return "&".join(pairs)


def mask_url(url: str) -> str:
    """The link with its secret-looking path segments, parameters and password replaced by ``***``."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if parts.password:
            userinfo, _, host = netloc.rpartition("@")
            netloc = f"{userinfo.partition(':')[0]}:{SECRET_MASK}@{host}"
    except ValueError:  # not a URL after all (a bad port or bracket): nothing of it is shown
        return SECRET_MASK
    path = "/".join(SECRET_MASK if looks_like_secret(segment) else segment for segment in parts.path.split("/"))
    return urlunsplit((parts.scheme, netloc, path, _mask_params(parts.query), _mask_params(parts.fragment)))


def links_in(text: str) -> list[str]:
    return [match.group(0).rstrip(_TRAILING) for match in _URL_RE.finditer(text)]


def mask_link_secrets(text: str, *, reveal: Callable[[str], bool] | None = None) -> str:
    """``text`` with every link's secrets masked, except links ``reveal`` accepts."""

    def replace(match: re.Match) -> str:
        url = match.group(0)
        stripped = url.rstrip(_TRAILING)
        trailing = url[len(stripped):]
        if reveal is not None and reveal(stripped):
            return url
        return mask_url(stripped) + trailing

    return _URL_RE.sub(replace, text)
