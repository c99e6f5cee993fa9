"""Query-parameter filters (named after fields) for the tenancy lists; invalid values give 400."""

from __future__ import annotations

import django_filters
from django.db.models import Q, QuerySet

from projects.models import ApiKey, AuditEvent, Invitation, Membership, Project
from projects.roles import Role


class ProjectFilter(django_filters.FilterSet):
    name = django_filters.CharFilter(field_name="name", lookup_expr="icontains")

    class Meta:
        model = Project
        fields = ["name"]


class MemberFilter(django_filters.FilterSet):
    role = django_filters.ChoiceFilter(choices=Role.choices)
    email = django_filters.CharFilter(field_name="user__email", lookup_expr="iexact")
    project = django_filters.CharFilter(method="filter_project", help_text="members who can see this project")

    class Meta:
        model = Membership
        fields = ["role", "email", "project"]

    def filter_project(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(Membership.seeing_projects_q([value])).distinct()


class InvitationFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Invitation.Status.choices)
    email = django_filters.CharFilter(field_name="email", lookup_expr="iexact")

    class Meta:
        model = Invitation
        fields = ["status", "email"]


class ApiKeyFilter(django_filters.FilterSet):
    role = django_filters.ChoiceFilter(choices=Role.choices)
    revoked = django_filters.BooleanFilter(field_name="revoked_at", lookup_expr="isnull", exclude=True)

    class Meta:
        model = ApiKey
        fields = ["role", "revoked"]


class AuditEventFilter(django_filters.FilterSet):
    actor = django_filters.CharFilter(method="filter_actor", help_text="actor id (usr_…, key_…) or email")
    action = django_filters.CharFilter(
        method="filter_action", help_text="exact action (project.create) or a family (project)"
    )
    target = django_filters.CharFilter(field_name="target_id", help_text="id of the object acted on")
    since = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte",
                                             help_text="RFC 3339 timestamp")

    class Meta:
        model = AuditEvent
        fields = ["actor", "action", "target", "since"]

    def filter_actor(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(Q(actor_id=value) | Q(actor_label__iexact=value))

    def filter_action(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        if "." in value:
            return queryset.filter(action=value)
        return queryset.filter(action__startswith=value + ".")
