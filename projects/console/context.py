"""Template context for every console page: the current organization and the switcher's choices."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def console_context(request: HttpRequest) -> dict:
    principal = getattr(request, "principal", None)
    context: dict = {"embedded": settings.EMBEDDED, "principal": principal}
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        from projects.tenancy import memberships_of

        context["user_memberships"] = list(memberships_of(user))
    return context
