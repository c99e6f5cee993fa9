"""Models of SCIM 2.0 provisioning (``projects.scim``): part of the projects app (imported at the end of
``projects.models``), kept apart by concern."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from controlplane.ids import PrefixedIdField
from projects.models import Membership, Organization, Project, ProjectLimited
from projects.roles import Role


class ScimToken(models.Model):
    """The bearer credential of an organization's SCIM 2.0 endpoint (``/scim/v2/``): one per organization,
    shown once, stored hashed like an API key's secret. Rotating replaces the row; revoking deletes it."""

    id = PrefixedIdField(prefix="sct")
    organization = models.OneToOneField(Organization, on_delete=models.CASCADE, related_name="scim_token")
    # "scim_<prefix>_<secret>": the prefix finds the row, the secret is only hashed.
    prefix = models.CharField(max_length=16, unique=True)
    secret_hash = models.CharField(max_length=64)
    # The creator's role when it was made: the provider acts with no more (an admin's token removes no owner).
    role = models.CharField(max_length=16, choices=Role.choices)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"SCIM token scim_{self.prefix}… of {self.organization_id}"


class ScimUser(models.Model):
    """A person as the organization's identity provider provisions them (a SCIM User resource).

    The row outlives the membership: ``active`` false removes the membership (and the person's consoles)
    but keeps the resource, so the provider can read it and switch it back on, which makes a new membership
    with the role its groups give.
    """

    id = PrefixedIdField(prefix="scu")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="scim_users")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="scim_users")
    membership = models.OneToOneField(Membership, null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="scim_user")
    # The provider's name for the person (often, not always, their address); unique in the organization.
    user_name = models.CharField(max_length=255)
    # The provider's email values as sent; the account's login address is the primary one (see services.scim).
    emails = models.JSONField(default=list, blank=True)
    external_id = models.CharField(max_length=255, blank=True)
    display_name = models.CharField(max_length=255, blank=True)
    given_name = models.CharField(max_length=100, blank=True)
    family_name = models.CharField(max_length=100, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "user"], name="one_scim_user_per_org")]
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"SCIM user {self.user_id} of {self.organization_id}"


class ScimGroup(ProjectLimited):
    """A group the identity provider pushes, mapped to a role and a project limit. A provisioned member's
    role is the strongest role among their groups (``projects.roles.ROLE_STRENGTH``) and their project limit
    the union of those groups' limits (any unlimited group: every project). ``role`` empty: the group grants
    nothing (membership in it is only recorded)."""

    id = PrefixedIdField(prefix="scg")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="scim_groups")
    display_name = models.CharField(max_length=255)
    external_id = models.CharField(max_length=255, blank=True)
    role = models.CharField(max_length=16, choices=Role.choices, blank=True)
    projects = models.ManyToManyField(Project, blank=True, related_name="+")
    members = models.ManyToManyField(ScimUser, blank=True, related_name="groups")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "display_name"],
                                               name="scim_group_name_unique_per_org")]
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.display_name} ({self.id})"
