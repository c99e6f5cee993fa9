"""What the SCIM endpoint publishes about itself (RFC 7643 §5-7): the attributes it keeps, nothing more, so a
client (or ``scim2-tester``) never sends what would be dropped."""

from __future__ import annotations

from typing import Any

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SPC_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
RESOURCE_TYPE_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SCHEMA_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"
MAX_RESULTS = 200


def _attr(name: str, type_: str = "string", *, required: bool = False, multi: bool = False,
          mutability: str = "readWrite", uniqueness: str = "none", returned: str = "default",
          sub: list[dict] | None = None, description: str = "", canonical: list[str] | None = None,
          reference_types: list[str] | None = None) -> dict[str, Any]:
    attribute: dict[str, Any] = {
        "name": name, "type": type_, "multiValued": multi, "description": description, "required": required,
        "caseExact": False, "mutability": mutability, "returned": returned, "uniqueness": uniqueness,
    }
    if sub is not None:
        attribute["subAttributes"] = sub
    if canonical is not None:
        attribute["canonicalValues"] = canonical
    if reference_types is not None:
        attribute["referenceTypes"] = reference_types
    return attribute


USER_ATTRIBUTES = [
    _attr("userName", required=True, uniqueness="server",
          description="The provider's unique name for the person; their login address when no email is given."),
    _attr("name", "complex", sub=[_attr("givenName"), _attr("familyName")]),
    _attr("displayName"),
    _attr("emails", "complex", multi=True, required=True,
          description="The primary one (else the first) is the person's login address: at least one is required.",
          sub=[_attr("value", required=True), _attr("type"), _attr("primary", "boolean"), _attr("display")]),
    _attr("active", "boolean", required=True,
          description="false: the membership is removed and the person's consoles end. Absent on create: true."),
    _attr("groups", "complex", multi=True, mutability="readOnly",
          sub=[_attr("value", mutability="readOnly"), _attr("display", mutability="readOnly"),
               _attr("$ref", "reference", mutability="readOnly", reference_types=["Group"])]),
]

GROUP_ATTRIBUTES = [
    _attr("displayName", required=True, uniqueness="server"),
    _attr("members", "complex", multi=True,
          sub=[_attr("value", mutability="immutable"),
               _attr("$ref", "reference", mutability="immutable", reference_types=["User"])]),
]

def schema_resources(base: str) -> list[dict[str, Any]]:
    def schema(id_: str, name: str, attributes: list[dict]) -> dict[str, Any]:
        return {"schemas": [SCHEMA_SCHEMA], "id": id_, "name": name, "description": name, "attributes": attributes,
                "meta": {"resourceType": "Schema", "location": f"{base}Schemas/{id_}"}}

    return [schema(USER_SCHEMA, "User", USER_ATTRIBUTES), schema(GROUP_SCHEMA, "Group", GROUP_ATTRIBUTES)]


def resource_types(base: str) -> list[dict[str, Any]]:
    return [
        {"schemas": [RESOURCE_TYPE_SCHEMA], "id": "User", "name": "User", "endpoint": "/Users",
         "description": "Members of the organization", "schema": USER_SCHEMA, "schemaExtensions": [],
         "meta": {"resourceType": "ResourceType", "location": f"{base}ResourceTypes/User"}},
        {"schemas": [RESOURCE_TYPE_SCHEMA], "id": "Group", "name": "Group", "endpoint": "/Groups",
         "description": "Groups, each mapped to a role and projects", "schema": GROUP_SCHEMA,
         # What a group grants is mapped by an admin in the API (/api/v1/scim-groups), not by the provider.
         "schemaExtensions": [],
         "meta": {"resourceType": "ResourceType", "location": f"{base}ResourceTypes/Group"}},
    ]


def service_provider_config(base: str) -> dict[str, Any]:
    return {
        "schemas": [SPC_SCHEMA],
        "patch": {"supported": True},
        "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": True, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": False},
        "sort": {"supported": False},
        "etag": {"supported": False},
        "authenticationSchemes": [{
            "type": "oauthbearertoken", "name": "SCIM token", "primary": True,
            "description": "Authorization: Bearer scim_… (the organization's SCIM token, made in the console "
                           "or with POST /api/v1/organization/scim-token).",
        }],
        "meta": {"resourceType": "ServiceProviderConfig", "location": f"{base}ServiceProviderConfig"},
    }
