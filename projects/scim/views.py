"""The SCIM 2.0 endpoints. :class:`ScimView` is the surface's one choke point: it resolves the bearer token to
its organization once, applies the organization's IP allowlist, and turns every error into a SCIM error."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from controlplane import errors
from projects import selectors
from projects.models import ScimGroup, ScimUser
from projects.scim import schemas as sc
from projects.scim.errors import ScimError
from projects.scim.filters import filter_to_q, parse_filter
from projects.scim.patch import apply_patch_operation
from projects.services import scim as services
from projects.services.security import network_access_check
from projects.tenancy import Principal, client_ip

CONTENT_TYPE = "application/scim+json"
USER_FILTER_FIELDS = {"username": "user_name", "emails.value": "user__email", "emails": "user__email",
                      "active": "active", "displayname": "display_name", "externalid": "external_id",
                      "id": "id", "name.givenname": "given_name", "name.familyname": "family_name",
                      "groups.value": "groups__id", "groups.display": "groups__display_name",
                      "meta.created": "created_at", "meta.lastmodified": "updated_at"}
GROUP_FILTER_FIELDS = {"displayname": "display_name", "externalid": "external_id", "id": "id",
                       "members.value": "members__id", "members": "members__id",
                       "meta.created": "created_at", "meta.lastmodified": "updated_at"}
_DOMAIN_SCIM_TYPES = {400: "invalidValue", 409: "uniqueness"}


def scim_response(body: Any, status: int = 200, *, location: str | None = None) -> HttpResponse:
    response = HttpResponse(json.dumps(body), status=status, content_type=CONTENT_TYPE)
    if location:
        response["Location"] = location
    return response


@method_decorator(csrf_exempt, name="dispatch")  # a bearer token, never a cookie: nothing for CSRF to guard
class ScimView(View):
    principal: Principal
    base: str

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "dispatch" in cls.__dict__:
            raise TypeError(f"{cls.__name__} overrides dispatch: the SCIM token is resolved in ScimView only.")

    def dispatch(self, request: HttpRequest, *args, **kwargs) -> HttpResponseBase:
        try:
            self.principal = self.authenticate(request)
            network_access_check(self.principal, surface="api")
            self.base = request.build_absolute_uri("/scim/v2/")
            response = super().dispatch(request, *args, **kwargs)
            if response.status_code == 405:
                raise ScimError(405, f"{request.method} is not supported here.")
            return response
        except ScimError as exc:
            return scim_response(exc.body(), exc.status)
        except errors.DomainError as exc:
            scim_type = _DOMAIN_SCIM_TYPES.get(exc.status_code)
            if exc.status_code == 409 and not any("uniqueness" in m for ms in exc.errors.values() for m in ms):
                scim_type = None  # a state conflict (the last owner), not a duplicate
            return scim_response(ScimError(exc.status_code, exc.detail, scim_type=scim_type).body(), exc.status_code)

    @staticmethod
    def authenticate(request: HttpRequest) -> Principal:
        header = request.headers.get("Authorization", "")
        scheme, _, raw = header.partition(" ")
        token = services.scim_token_authenticate(raw.strip()) if scheme.lower() == "bearer" else None
        if token is None:
            raise ScimError(401, "A valid SCIM token is required (Authorization: Bearer scim_…).")
        return services.scim_principal(token, ip=client_ip(request),
                                       user_agent=request.headers.get("User-Agent", "")[:256])

    def body(self) -> dict:
        try:
            data = json.loads(self.request.body or b"{}")
        except (ValueError, UnicodeDecodeError) as exc:
            raise ScimError(400, "The body is not JSON.", scim_type="invalidSyntax") from exc
        if not isinstance(data, dict):
            raise ScimError(400, "The body must be a JSON object.", scim_type="invalidSyntax")
        return data


class RootSearchView(ScimView):
    """``POST /.search`` across every resource type (RFC 7644 §3.4.3): the users, then the groups."""

    def post(self, request: HttpRequest) -> HttpResponse:
        params = _search_params(self.body())
        start = max(_int_param(params, "startIndex", 1), 1)
        count = min(max(_int_param(params, "count", sc.MAX_RESULTS), 0), sc.MAX_RESULTS)
        resources: list[dict] = []
        total, refused = 0, None
        for view_class in (UsersView, GroupsView):
            view = view_class(request=request, principal=self.principal, base=self.base)
            try:
                found = view.search({**params, "startIndex": 1, "count": sc.MAX_RESULTS})
            except ScimError as exc:
                refused = exc  # a filter on an attribute this type lacks (userName on groups) matches none of it
                continue
            total += found["totalResults"]
            resources += found["Resources"]
        if refused is not None and total == 0 and not resources:
            raise refused
        page = resources[start - 1:start - 1 + count]
        return scim_response(_list(page, total, start))


class NotFoundView(ScimView):
    def get(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        raise ScimError(404, f"Nothing at {request.path}.")

    post = put = patch = delete = get


# --- discovery ----------------------------------------------------------------------------------------------
def _list(resources: list[dict], total: int, start: int) -> dict:
    return {"schemas": [sc.LIST_SCHEMA], "totalResults": total, "startIndex": start,
            "itemsPerPage": len(resources), "Resources": resources}


class ServiceProviderConfigView(ScimView):
    def get(self, request: HttpRequest) -> HttpResponse:
        return scim_response(sc.service_provider_config(self.base))


class ResourceTypesView(ScimView):
    def get(self, request: HttpRequest, name: str | None = None) -> HttpResponse:
        items = sc.resource_types(self.base)
        if name is None:
            return scim_response(_list(items, len(items), 1))
        for item in items:
            if item["id"] == name:
                return scim_response(item)
        raise ScimError(404, f"No resource type {name}.")


class SchemasView(ScimView):
    def get(self, request: HttpRequest, name: str | None = None) -> HttpResponse:
        items = sc.schema_resources(self.base)
        if name is None:
            return scim_response(_list(items, len(items), 1))
        for item in items:
            if item["id"] == name:
                return scim_response(item)
        raise ScimError(404, f"No schema {name}.")


# --- resources ----------------------------------------------------------------------------------------------
def _search_params(body: dict) -> dict:
    """A ``.search`` body as the query parameters of a list (its attribute lists joined with commas)."""
    params = dict(body)
    for name in ("attributes", "excludedAttributes"):
        if isinstance(params.get(name), list):
            params[name] = ",".join(str(item) for item in params[name])
    return params


def _int_param(params: Any, name: str, default: int) -> int:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise ScimError(400, f"{name} must be an integer.", scim_type="invalidValue") from None


def _project_attributes(resource: dict, params: Any, always: set[str]) -> dict:
    """``attributes`` / ``excludedAttributes`` (RFC 7644 §3.4.2.5), on top-level and sub-attributes."""
    wanted = [a.strip() for a in str(params.get("attributes") or "").split(",") if a.strip()]
    excluded = [a.strip() for a in str(params.get("excludedAttributes") or "").split(",") if a.strip()]

    def key(name: str) -> tuple[str, str | None]:
        name = name.rsplit(":", 1)[-1] if name.lower().startswith("urn:") and ":" in name else name
        head, _, sub = name.partition(".")
        return head.lower(), sub.lower() or None

    if wanted:
        keep: dict[str, set[str] | None] = {}
        for head, sub in map(key, wanted):
            if sub is None:
                keep[head] = None
            elif keep.get(head, set()) is not None:
                keep.setdefault(head, set()).add(sub)  # type: ignore[union-attr]
        out = {}
        for name, value in resource.items():
            if name in always or name.lower() in keep:
                subs = keep.get(name.lower())
                if subs and isinstance(value, dict):
                    value = {k: v for k, v in value.items() if k.lower() in subs}
                elif subs and isinstance(value, list):
                    value = [{k: v for k, v in item.items() if k.lower() in subs} for item in value]
                out[name] = value
        resource = out
    for head, sub in map(key, excluded):
        for name in list(resource):
            if name.lower() == head and name not in always:
                if sub is None:
                    del resource[name]
                elif isinstance(resource[name], dict):
                    resource[name] = {k: v for k, v in resource[name].items() if k.lower() != sub}
    return resource


class ResourceView(ScimView):
    """List, create (collection URL) and get, replace, patch, delete (item URL) of one resource type."""

    resource_type: ClassVar[str]
    filter_fields: ClassVar[dict[str, str]]
    always_returned = {"id", "schemas", "meta"}

    # hooks of each resource type
    def queryset(self) -> QuerySet:
        raise NotImplementedError

    def render(self, obj: Any) -> dict:
        raise NotImplementedError

    def create(self, data: dict) -> Any:
        raise NotImplementedError

    def replace(self, obj: Any, data: dict) -> Any:
        raise NotImplementedError

    def remove(self, obj: Any) -> None:
        raise NotImplementedError

    # HTTP
    def location(self, obj: Any) -> str:
        return f"{self.base}{self.resource_type}s/{obj.pk}"

    def lookup(self, resource_id: str) -> Any:
        obj = self.queryset().filter(pk=resource_id).first()
        if obj is None:
            raise ScimError(404, f"No {self.resource_type} {resource_id}.")
        return obj

    def output(self, obj: Any, status: int = 200, *, location: bool = False) -> HttpResponse:
        resource = _project_attributes(self.render(obj), self.request.GET, self.always_returned)
        return scim_response(resource, status, location=self.location(obj) if location else None)

    def get(self, request: HttpRequest, resource_id: str | None = None) -> HttpResponse:
        if resource_id is not None:
            return self.output(self.lookup(resource_id))
        return scim_response(self.search(request.GET))

    def search(self, params: Any) -> dict:
        """A list (RFC 7644 §3.4.2): ``params`` from the query string, or the body of a POST to ``.search``."""
        queryset = self.queryset()
        raw_filter = params.get("filter")
        if raw_filter:
            queryset = queryset.filter(filter_to_q(parse_filter(str(raw_filter)), self.filter_fields)).distinct()
        start = max(_int_param(params, "startIndex", 1), 1)
        count = min(max(_int_param(params, "count", sc.MAX_RESULTS), 0), sc.MAX_RESULTS)
        total = queryset.count()
        page = list(queryset[start - 1:start - 1 + count]) if count else []
        resources = [_project_attributes(self.render(obj), params, self.always_returned) for obj in page]
        return _list(resources, total, start)

    def post(self, request: HttpRequest, resource_id: str | None = None) -> HttpResponse:
        if resource_id == ".search":
            return scim_response(self.search(_search_params(self.body())))
        if resource_id is not None:
            raise ScimError(405, "POST goes to the collection.")
        obj = self.create(self.body())
        return self.output(self.lookup(obj.pk), 201, location=True)

    def put(self, request: HttpRequest, resource_id: str | None = None) -> HttpResponse:
        if resource_id is None:
            raise ScimError(405, "PUT needs a resource id.")
        obj = self.replace(self.lookup(resource_id), self.body())
        return self.output(self.lookup(obj.pk))

    def patch(self, request: HttpRequest, resource_id: str | None = None) -> HttpResponse:
        if resource_id is None:
            raise ScimError(405, "PATCH needs a resource id.")
        obj = self.lookup(resource_id)
        body = self.body()
        if sc.PATCH_SCHEMA not in body.get("schemas", []):
            raise ScimError(400, f"A PATCH body has the schema {sc.PATCH_SCHEMA}.", scim_type="invalidSyntax")
        operations = body.get("Operations") or body.get("operations")
        if not isinstance(operations, list) or not operations:
            raise ScimError(400, "Operations must be a non-empty list.", scim_type="invalidSyntax")
        document = self.render(obj)
        for operation in operations:
            apply_patch_operation(document, operation)
        obj = self.replace(obj, document)
        return self.output(self.lookup(obj.pk))

    def delete(self, request: HttpRequest, resource_id: str | None = None) -> HttpResponse:
        if resource_id is None:
            raise ScimError(405, "DELETE needs a resource id.")
        self.remove(self.lookup(resource_id))
        return HttpResponse(status=204)


# --- users --------------------------------------------------------------------------------------------------
def _get(data: dict, name: str, default: Any = None) -> Any:
    for key, value in data.items():
        if key.lower() == name.lower():
            return value
    return default


def _string(data: dict, name: str) -> str:
    value = _get(data, name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ScimError(400, f"{name} must be a string.", scim_type="invalidValue")
    return value


def _active(data: dict) -> bool:
    value = _get(data, "active", True)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"  # some providers (Azure AD) send "False"
    if not isinstance(value, bool):
        raise ScimError(400, "active must be a boolean.", scim_type="invalidValue")
    return value


class UsersView(ResourceView):
    resource_type = "User"
    filter_fields = USER_FILTER_FIELDS

    def queryset(self) -> QuerySet:
        return selectors.scim_user_list(principal=self.principal)

    def render(self, obj: ScimUser) -> dict:
        name = {k: v for k, v in (("givenName", obj.given_name), ("familyName", obj.family_name)) if v}
        resource: dict[str, Any] = {
            "schemas": [sc.USER_SCHEMA], "id": obj.pk, "userName": obj.user_name,
            "emails": obj.emails or [{"value": obj.user.email, "primary": True}],
            # Removed from the organization in the console since: no longer active, whatever was provisioned.
            "active": obj.active and obj.membership_id is not None,
            "groups": [{"value": g.pk, "display": g.display_name, "$ref": f"{self.base}Groups/{g.pk}"}
                       for g in obj.groups.all()],
            "meta": {"resourceType": "User", "created": obj.created_at.isoformat(),
                     "lastModified": obj.updated_at.isoformat(), "location": self.location(obj)},
        }
        if obj.external_id:
            resource["externalId"] = obj.external_id
        if obj.display_name:
            resource["displayName"] = obj.display_name
        if name:
            resource["name"] = name
        if not resource["groups"]:
            del resource["groups"]
        return resource

    def fields(self, data: dict) -> services.UserFields:
        user_name = _string(data, "userName")
        if not user_name:
            raise ScimError(400, "userName is required.", scim_type="invalidValue")
        name = _get(data, "name") or {}
        if not isinstance(name, dict):
            raise ScimError(400, "name must be an object.", scim_type="invalidValue")
        emails = _get(data, "emails") or []
        if not isinstance(emails, list) or not all(isinstance(e, dict) for e in emails):
            raise ScimError(400, "emails is a list of objects.", scim_type="invalidValue")
        emails = [{k: v for k, v in e.items() if k in ("value", "type", "primary", "display")} for e in emails]
        return services.UserFields(user_name=user_name, emails=emails, external_id=_string(data, "externalId"),
                                   display_name=_string(data, "displayName"), given_name=_string(name, "givenName"),
                                   family_name=_string(name, "familyName"), active=_active(data))

    def create(self, data: dict) -> ScimUser:
        return services.scim_user_create(principal=self.principal, fields=self.fields(data))

    def replace(self, obj: ScimUser, data: dict) -> ScimUser:
        return services.scim_user_replace(principal=self.principal, scim_user=obj, fields=self.fields(data))

    def remove(self, obj: ScimUser) -> None:
        services.scim_user_delete(principal=self.principal, scim_user=obj)


# --- groups -------------------------------------------------------------------------------------------------
class GroupsView(ResourceView):
    resource_type = "Group"
    filter_fields = GROUP_FILTER_FIELDS

    def queryset(self) -> QuerySet:
        return selectors.scim_group_list(principal=self.principal)

    def render(self, obj: ScimGroup) -> dict:
        resource: dict[str, Any] = {
            "schemas": [sc.GROUP_SCHEMA], "id": obj.pk, "displayName": obj.display_name,
            "members": [{"value": m.pk, "$ref": f"{self.base}Users/{m.pk}"} for m in obj.members.all()],
            "meta": {"resourceType": "Group", "created": obj.created_at.isoformat(),
                     "lastModified": obj.updated_at.isoformat(), "location": self.location(obj)},
        }
        if obj.external_id:
            resource["externalId"] = obj.external_id
        return resource

    def fields(self, data: dict) -> services.GroupFields:
        members = _get(data, "members")
        member_ids = None
        if members is not None:
            if not isinstance(members, list) or not all(isinstance(m, dict) and isinstance(m.get("value"), str)
                                                        for m in members):
                raise ScimError(400, "members is a list of {\"value\": user id}.", scim_type="invalidValue")
            member_ids = [m["value"] for m in members]
        return services.GroupFields(display_name=_string(data, "displayName"), external_id=_string(data, "externalId"),
                                    member_ids=member_ids if member_ids is not None else [])

    def create(self, data: dict) -> ScimGroup:
        return services.scim_group_create(principal=self.principal, fields=self.fields(data))

    def replace(self, obj: ScimGroup, data: dict) -> ScimGroup:
        return services.scim_group_update(principal=self.principal, group=obj, fields=self.fields(data))

    def remove(self, obj: ScimGroup) -> None:
        services.scim_group_delete(principal=self.principal, group=obj)
