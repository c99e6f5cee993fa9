"""The ACL tab of a deployment's Access area: the ordered rules editor and "would this client be allowed?".

The editor works without JavaScript: adding, moving and deleting a rule post the whole editor back and get
it again rearranged, unsaved; only "Save" calls ``acl_put``, which validates every rule and audits the change.
The check evaluates the saved rules with ``acl_first_match``, the matching the broker applies.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, ClassVar

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect

from controlplane import errors
from deployments import selectors as deployment_selectors
from deployments.console import access_forms
from deployments.console.access import AccessMixin
from deployments.models import Deployment
from deployments.mqtt_access import selectors, services
from deployments.mqtt_access.validation import acl_first_match
from projects.console.base import OrganizationConsoleView
from projects.roles import Perm
from projects.tenancy import Principal

PREFIX = "rules"
RULE_FIELDS = tuple(access_forms.AclRuleForm.base_fields)
NEW_RULE = {"permission": "allow", "who": "all", "who_value": "", "action": "all", "topics": ""}
_OP = re.compile(r"^(up|down|delete)-(\d+)$")
_RULE_ERROR = re.compile(r"^rules\[(\d+)\]$")
_PAGE_ERRORS = (errors.NotFound, errors.PermissionDenied)


def posted_rules(data: QueryDict) -> list[dict[str, str]]:
    """The editor's rules as posted, unvalidated (to be rearranged and shown again)."""
    try:
        count = min(int(data.get(f"{PREFIX}-TOTAL_FORMS", "0")), 500)
    except ValueError:
        count = 0
    return [{name: data.get(f"{PREFIX}-{index}-{name}", "") for name in RULE_FIELDS} for index in range(count)]


def rearranged(rules: list[dict[str, str]], op: str) -> list[dict[str, str]]:
    if op == "add":
        return [*rules, dict(NEW_RULE)]
    match = _OP.match(op)
    if not match:
        return rules
    verb, index = match.group(1), int(match.group(2))
    if not 0 <= index < len(rules):
        return rules
    rules = list(rules)
    if verb == "delete":
        del rules[index]
    elif verb == "up" and index > 0:
        rules[index - 1], rules[index] = rules[index], rules[index - 1]
    elif verb == "down" and index < len(rules) - 1:
        rules[index + 1], rules[index] = rules[index], rules[index + 1]
    return rules


def _place_rule_errors(exc: errors.DomainError, sent: Sequence[forms.Form], no_match_form: forms.Form) -> None:
    """``acl_put``'s refusals (keyed ``rules[i]`` among the rules sent) next to the field of that rule."""
    placed = False
    for key, problems in exc.errors.items():
        match = _RULE_ERROR.match(key)
        if key == "no_match":
            no_match_form.add_error("no_match", list(problems))
        elif match and int(match.group(1)) < len(sent):
            form = sent[int(match.group(1))]
            for problem in problems:
                field = "topics" if problem.startswith("topics") else "who_value" if problem.startswith("who") \
                    else None
                form.add_error(field, problem)
        else:
            continue
        placed = True
    if not placed:
        no_match_form.add_error(None, exc.detail)


def acl_verdict(*, principal: Principal, deployment: Deployment, username: str, clientid: str, action: str,
                topic: str) -> dict[str, Any]:
    """What the broker would decide for this client, and why (the rules as saved)."""
    if username:
        try:
            if selectors.mqtt_user_get(deployment=deployment, username=username).is_superuser:
                return {"allowed": True, "superuser": True}
        except errors.NotFound:
            pass
    access = selectors.mqtt_access_get(deployment=deployment)
    rules = selectors.acl_rules(access)
    index = acl_first_match(rules, username=username, clientid=clientid, action=action, topic=topic)
    if index is not None:
        return {"allowed": rules[index].permission == "allow", "rule_number": index + 1,
                "rule": rules[index].as_json()}
    http_authz = deployment_selectors.http_auth_list(principal=principal).filter(
        deployment=deployment, enabled=True).exclude(authz_url="").exists()
    return {"allowed": access.acl_no_match == "allow", "no_match": access.acl_no_match, "http_authz": http_authz}


class AclView(AccessMixin, OrganizationConsoleView):
    template_name = "console/deployments/access/acl.html"
    access_tab = "acl"

    def context(self, *, formset: forms.BaseFormSet | None = None, no_match_form: forms.Form | None = None,
                check_form: forms.Form | None = None, verdict: dict[str, Any] | None = None,
                unsaved: bool = False) -> dict[str, Any]:
        access = selectors.mqtt_access_get(deployment=self.deployment)
        if formset is None:
            formset = access_forms.AclRuleFormSet(
                prefix=PREFIX, initial=[access_forms.acl_rule_initial(rule) for rule in access.acl_rules])
        no_match_form = no_match_form or access_forms.AclNoMatchForm(initial={"no_match": access.acl_no_match})
        can_write = self.principal.has(Perm.DEPLOYMENTS_WRITE)
        if not can_write:  # shown to read, not offered to change
            for form in [*formset.forms, no_match_form]:
                for field in form.fields.values():
                    field.disabled = True
        check_form = check_form or access_forms.AclCheckForm(auto_id="check_%s")
        return self.access_context(formset=formset, no_match_form=no_match_form, unsaved=unsaved,
                                   check_form=check_form, verdict=verdict, can_write=can_write)

    def get(self, request: HttpRequest, deployment_id: str) -> HttpResponse:
        return self.render_page(self.context())

    def post(self, request: HttpRequest, deployment_id: str) -> HttpResponse:
        self.principal.require(Perm.DEPLOYMENTS_WRITE)
        deployment = self.deployment
        op = request.POST.get("op", "save")
        if op != "save":
            formset = access_forms.AclRuleFormSet(prefix=PREFIX, initial=rearranged(posted_rules(request.POST), op))
            no_match_form = access_forms.AclNoMatchForm(initial={"no_match": request.POST.get("no_match", "deny")})
            return self.render_page(self.context(formset=formset, no_match_form=no_match_form, unsaved=True))
        formset = access_forms.AclRuleFormSet(request.POST, prefix=PREFIX)
        no_match_form = access_forms.AclNoMatchForm(request.POST)
        if formset.is_valid() and no_match_form.is_valid():
            sent = [form for form in formset.forms if form.cleaned_data]
            try:
                services.acl_put(principal=self.principal, deployment=deployment,
                                 rules=[form.rule() for form in sent],
                                 no_match=no_match_form.cleaned_data["no_match"])
            except _PAGE_ERRORS:
                raise
            except errors.DomainError as exc:
                _place_rule_errors(exc, sent, no_match_form)
            else:
                messages.success(request, "ACL saved; it reaches the broker within seconds, without disconnecting "
                                          "anyone.")
                return redirect("console:deployment-acl", deployment.id)
        return self.render_page(self.context(formset=formset, no_match_form=no_match_form, unsaved=True),
                                status=400)


class AclCheckView(AclView):
    """"Would this client be allowed?" — a read: viewers may ask too."""

    http_method_names: ClassVar[list[str]] = ["post"]

    def post(self, request: HttpRequest, deployment_id: str) -> HttpResponse:
        form = access_forms.AclCheckForm(request.POST, auto_id="check_%s")
        if not form.is_valid():
            return self.render_page(self.context(check_form=form), status=400)
        verdict = acl_verdict(principal=self.principal, deployment=self.deployment, **form.cleaned_data)
        return self.render_page(self.context(check_form=form, verdict=verdict))
