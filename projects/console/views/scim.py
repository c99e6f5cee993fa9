"""Console page of SCIM provisioning (owners and admins): the token (made or rotated, its secret shown once,
revoked) and what each group the provider pushed grants its members."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.cache import add_never_cache_headers

from controlplane import errors
from projects import selectors
from projects.console.base import OrganizationConsoleView
from projects.roles import Perm
from projects.services.scim import GROUP_ROLES, scim_group_grant_set, scim_token_create, scim_token_revoke

# A new SCIM token's secret between the POST that makes it and the one page that shows it.
SESSION_NEW_SCIM_TOKEN = "new_scim_token_secret"


class ScimSettingsView(OrganizationConsoleView):
    template_name = "console/scim.html"
    required_perm = Perm.MEMBERS_MANAGE

    def get(self, request: HttpRequest) -> HttpResponse:
        token = selectors.scim_token_get(principal=self.principal)
        waiting = request.session.pop(SESSION_NEW_SCIM_TOKEN, None)
        secret = waiting["secret"] if waiting and token is not None and waiting.get("id") == token.pk else None
        groups = [{"group": group, "limit": group.project_limit()}
                  for group in selectors.scim_group_list(principal=self.principal)]
        response = self.render_page({
            "token": token, "secret": secret, "base_url": request.build_absolute_uri("/scim/v2/"),
            "groups": groups, "roles": GROUP_ROLES,
            "projects": list(selectors.project_list(principal=self.principal).order_by("name")),
        })
        add_never_cache_headers(response)
        return response

    def post(self, request: HttpRequest) -> HttpResponse:
        action = request.POST.get("action")
        try:
            if action == "rotate":
                token, secret = scim_token_create(principal=self.principal)
                # Post/redirect/get: a reload must not rotate again; the secret waits for the one GET that shows it.
                request.session[SESSION_NEW_SCIM_TOKEN] = {"id": token.pk, "secret": secret}
            elif action == "revoke":
                scim_token_revoke(principal=self.principal)
                messages.success(request, "SCIM token revoked: the provider can no longer provision.")
            elif action == "group":
                group = selectors.scim_group_get(principal=self.principal, group_id=request.POST.get("group", ""))
                projects = selectors.projects_by_ids(principal=self.principal,
                                                     project_ids=request.POST.getlist("projects"))
                scim_group_grant_set(principal=self.principal, group=group, role=request.POST.get("role", ""),
                                     projects=projects)
                messages.success(request, f"Group {group.display_name} saved; its members' roles follow.")
            else:
                raise errors.ValidationFailed("Unknown action.")
        except (errors.ValidationFailed, errors.Conflict, errors.NotFound) as exc:
            messages.error(request, exc.detail)
        return redirect("console:scim")
