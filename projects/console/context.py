"""Template context for every console page: the current organization, the switcher's choices, and what
the principal may do (so templates hide buttons the services would refuse anyway)."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest

from projects.roles import Perm
from projects.tenancy import memberships_of

_PERM_NAMES = {name.lower(): value for name, value in vars(Perm).items() if name.isupper()}


def console_context(request: HttpRequest) -> dict:
    principal = getattr(request, "principal", None)
    context: dict = {
        "embedded": settings.EMBEDDED,
        "principal": principal,
        # e.g. {% if can.members_manage %}
        "can": {name: principal is not None and principal.has(perm) for name, perm in _PERM_NAMES.items()},
    }
    user = getattr(request, "user", None)
    if principal is not None and user is not None and user.is_authenticated:
        context["user_memberships"] = list(memberships_of(user))
    return context
