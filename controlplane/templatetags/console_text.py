"""Filters for showing text that may carry masked one-time links (the mail outbox)."""

from __future__ import annotations

import re

from django import template
from django.utils.html import urlize
from django.utils.safestring import SafeString, mark_safe

from controlplane.mail import SECRET_MASK

register = template.Library()

_MASKED_ANCHOR = re.compile(r'<a href="[^"]*' + re.escape(SECRET_MASK) + r'[^"]*"[^>]*>(.*?)</a>')


@register.filter(needs_autoescape=True)
def urlize_live(text: str, autoescape: bool = True) -> SafeString:
    """``urlize``, except that a link with a masked part stays text: followed, it only says "no longer valid"."""
    return mark_safe(_MASKED_ANCHOR.sub(r"\1", urlize(text, autoescape=autoescape)))  # noqa: S308 - urlize escaped it
