"""Tenancy endpoints. Thin: parse with an input serializer, call a service or selector, render."""

from __future__ import annotations

from django.contrib.auth import logout, update_session_auth_hash
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.api.serializers import ListRowsMixin
from controlplane.api.throttling import ClientIpRateThrottle, SignupRateThrottle
from projects import accounts, selectors
from projects.api import serializers as s
from projects.api.base import IdempotentPostMixin, OrganizationScopedViewSet
from projects.authentication import ConsoleSessionAuthentication
from projects.filters import ApiKeyFilter, AuditEventFilter, InvitationFilter, MemberFilter, ProjectFilter
from projects.roles import Perm
from projects.services.api_keys import api_key_create, api_key_revoke
from projects.services.invitations import invitation_accept, invitation_create, invitation_revoke
from projects.services.members import member_remove, member_update
from projects.services.organizations import organization_update, signup
from projects.services.projects import project_create, project_delete, project_update
from projects.services.scim import scim_group_grant_set, scim_token_create, scim_token_revoke
from projects.services.security import organization_security_update
from projects.services.sessions import console_session_end, console_sessions_end_others
from projects.session_tracking import current_console_session_id
from projects.tenancy import Principal, client_ip


class SignupView(IdempotentPostMixin, APIView):
    """Create an organization, its owner and an owner API key (the key is shown only here)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [SignupRateThrottle, ClientIpRateThrottle]

    def initial(self, request: Request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        self.begin_idempotency(request, scope=f"signup:{client_ip(request)}")

    @extend_schema(request=s.SignupIn, responses={201: s.SignupOut}, auth=[])
    def post(self, request: Request) -> Response:
        data = s.SignupIn(data=request.data)
        data.is_valid(raise_exception=True)
        organization, user, api_key, secret = signup(
            **data.validated_data, ip=client_ip(request), user_agent=request.headers.get("User-Agent", "")
        )
        api_key.key = secret
        body = {"organization": organization, "user": user, "api_key": api_key}
        return Response(s.SignupOut(body).data, status=status.HTTP_201_CREATED)


class PasswordResetView(APIView):
    """Mail a one-time link to choose a new password. The answer is the same whether or not the address has
    an account."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [ClientIpRateThrottle]

    @extend_schema(request=s.PasswordResetIn, responses={202: s.DetailOut}, auth=[])
    def post(self, request: Request) -> Response:
        data = s.PasswordResetIn(data=request.data)
        data.is_valid(raise_exception=True)
        accounts.password_reset_request(email=data.validated_data["email"], ip=client_ip(request))
        body = {"detail": "If an account uses this address, a link to choose a new password is on its way."}
        return Response(s.DetailOut(body).data, status=status.HTTP_202_ACCEPTED)


class PasswordResetConfirmView(APIView):
    """Set a new password with the token from the mailed link; every session of the account ends."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [ClientIpRateThrottle]

    @extend_schema(request=s.PasswordResetConfirmIn, responses={200: s.DetailOut}, auth=[])
    def post(self, request: Request) -> Response:
        data = s.PasswordResetConfirmIn(data=request.data)
        data.is_valid(raise_exception=True)
        accounts.password_reset_confirm(**data.validated_data, ip=client_ip(request),
                                        user_agent=request.headers.get("User-Agent", ""))
        return Response(s.DetailOut({"detail": "Your password is changed; log in with it."}).data)


class PasswordChangeView(APIView):
    """Change the signed-in person's password (console session only: an API key has no password). This
    session stays signed in; every other one ends."""

    authentication_classes = [ConsoleSessionAuthentication]

    @extend_schema(request=s.PasswordChangeIn, responses={200: s.DetailOut})
    def post(self, request: Request) -> Response:
        data = s.PasswordChangeIn(data=request.data)
        data.is_valid(raise_exception=True)
        user = accounts.password_change(user=request.user, **data.validated_data, ip=client_ip(request),
                                        user_agent=request.headers.get("User-Agent", ""),
                                        keep_session_id=current_console_session_id(request))
        update_session_auth_hash(request, user)
        return Response(s.DetailOut({"detail": "Your password is changed; other sessions are logged out."}).data)


class OrganizationViewSet(OrganizationScopedViewSet):
    permission_by_action = {"partial_update": Perm.ORGANIZATION_MANAGE}
    serializer_class = s.OrganizationOut

    @extend_schema(responses=s.OrganizationOut)
    def retrieve(self, request: Request) -> Response:
        return Response(s.OrganizationOut(self.principal.organization).data)

    @extend_schema(request=s.OrganizationPatchIn, responses=s.OrganizationOut)
    def partial_update(self, request: Request) -> Response:
        data = s.OrganizationPatchIn(data=request.data)
        data.is_valid(raise_exception=True)
        organization = organization_update(principal=self.principal, **data.validated_data)
        return Response(s.OrganizationOut(organization).data)


class OrganizationSecurityViewSet(OrganizationScopedViewSet):
    """The organization's security policy: IP allowlist and console session timeouts."""

    permission_by_action = {"partial_update": Perm.ORGANIZATION_MANAGE}
    serializer_class = s.SecurityPolicyOut

    def _render(self, organization) -> Response:
        return Response(s.SecurityPolicyOut(organization, context={"your_ip": self.principal.ip}).data)

    @extend_schema(responses=s.SecurityPolicyOut)
    def retrieve(self, request: Request) -> Response:
        return self._render(self.principal.organization)

    @extend_schema(request=s.SecurityPolicyPatchIn, responses=s.SecurityPolicyOut,
                   description="Change the policy. A non-empty ip_allowlist must include the caller's own address "
                               "(your_ip), or it is refused with 400: nobody locks themselves out.")
    def partial_update(self, request: Request) -> Response:
        data = s.SecurityPolicyPatchIn(data=request.data)
        data.is_valid(raise_exception=True)
        organization = organization_security_update(principal=self.principal, **data.validated_data)
        return self._render(organization)


class ScimTokenViewSet(OrganizationScopedViewSet):
    """The organization's SCIM 2.0 token (owners and admins): status, create or rotate, revoke."""

    permission_by_action = {"retrieve": Perm.MEMBERS_MANAGE, "create": Perm.MEMBERS_MANAGE,
                            "destroy": Perm.MEMBERS_MANAGE}
    serializer_class = s.ScimTokenOut

    def _render(self, request: Request, token, secret: str | None = None, status_code: int = 200) -> Response:
        data = {"enabled": token is not None, "base_url": request.build_absolute_uri("/scim/v2/"),
                "prefix": token.prefix if token else None, "role": token.role if token else None,
                "created_at": token.created_at if token else None,
                "last_used_at": token.last_used_at if token else None}
        if secret is not None:
            data["token"] = secret
        return Response(s.ScimTokenOut(data).data, status=status_code)

    @extend_schema(responses=s.ScimTokenOut)
    def retrieve(self, request: Request) -> Response:
        return self._render(request, selectors.scim_token_get(principal=self.principal))

    @extend_schema(request=None, responses={201: s.ScimTokenOut},
                   description="Create the SCIM token, or replace it (the old one stops at once). The secret is "
                               "in this answer only.")
    def create(self, request: Request) -> Response:
        token, secret = scim_token_create(principal=self.principal)
        return self._render(request, token, secret, status.HTTP_201_CREATED)

    @extend_schema(responses={204: None}, description="Revoke the SCIM token; 404 if there is none.")
    def destroy(self, request: Request) -> Response:
        scim_token_revoke(principal=self.principal)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ScimGroupViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrganizationScopedViewSet):
    """The groups the organization's identity provider pushed over SCIM, and the role and projects each gives
    its members (the strongest role of a member's groups wins; their projects add up)."""

    permission_by_action = {"list": Perm.MEMBERS_MANAGE, "retrieve": Perm.MEMBERS_MANAGE,
                            "partial_update": Perm.MEMBERS_MANAGE}
    serializer_class = s.ScimGroupOut
    http_method_names = ["get", "patch", "head", "options"]

    def scoped_queryset(self, principal: Principal) -> QuerySet:
        return selectors.scim_group_list(principal=principal)

    @extend_schema(request=s.ScimGroupPatchIn, responses=s.ScimGroupOut)
    def partial_update(self, request: Request, pk: str) -> Response:
        group = self.get_object()  # a stranger's object is 404 whatever the body
        data = s.ScimGroupPatchIn(data=request.data)
        data.is_valid(raise_exception=True)
        projects = data.validated_data.get("projects")
        if projects is not None:
            projects = selectors.projects_by_ids(principal=self.principal, project_ids=projects)
        scim_group_grant_set(principal=self.principal, group=group, role=data.validated_data.get("role"),
                             projects=projects)
        return Response(s.ScimGroupOut(selectors.scim_group_get(principal=self.principal, group_id=group.pk)).data)


class ConsoleSessionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrganizationScopedViewSet):
    """The caller's own console sessions (an API key has none: its list is empty)."""

    serializer_class = s.ConsoleSessionOut
    http_method_names = ["get", "post", "delete", "head", "options"]

    def scoped_queryset(self, principal: Principal) -> QuerySet:
        return selectors.console_session_list(principal=principal)

    def get_serializer_context(self) -> dict:
        return {**super().get_serializer_context(), "current_session_id": current_console_session_id(self.request)}

    @extend_schema(responses={204: None}, description="End the session: its browser is logged out at its next "
                                                      "request. Ending the current one logs this session out.")
    def destroy(self, request: Request, pk: str) -> Response:
        session = self.get_object()
        console_session_end(principal=self.principal, session=session)
        if session.pk == current_console_session_id(request):
            logout(request)  # a fresh, empty session, or saving this one at the end would find it deleted
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses=s.SessionsEndedOut,
                   description="End every session of yours except the one making this request.")
    @action(detail=False, methods=["post"], url_path="end-others")
    def end_others(self, request: Request) -> Response:
        ended = console_sessions_end_others(principal=self.principal,
                                            keep_session_id=current_console_session_id(request))
        return Response(s.SessionsEndedOut({"ended": ended}).data)


class ProjectViewSet(ListRowsMixin, mixins.RetrieveModelMixin, OrganizationScopedViewSet):
    permission_by_action = {"create": Perm.PROJECTS_WRITE, "partial_update": Perm.PROJECTS_WRITE,
                            "destroy": Perm.PROJECTS_WRITE}
    serializer_class = s.ProjectOut
    filterset_class = ProjectFilter
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def scoped_queryset(self, principal: Principal) -> QuerySet:
        return selectors.project_list(principal=principal)

    @extend_schema(request=s.ProjectIn, responses={201: s.ProjectOut})
    def create(self, request: Request) -> Response:
        data = s.ProjectIn(data=request.data)
        data.is_valid(raise_exception=True)
        project = project_create(principal=self.principal, **data.validated_data)
        return Response(s.ProjectOut(project).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.ProjectPatchIn, responses=s.ProjectOut)
    def partial_update(self, request: Request, pk: str) -> Response:
        project = self.get_object()  # a stranger's object is 404 whatever the body
        data = s.ProjectPatchIn(data=request.data)
        data.is_valid(raise_exception=True)
        project = project_update(principal=self.principal, project=project, **data.validated_data)
        return Response(s.ProjectOut(project).data)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, pk: str) -> Response:
        project_delete(principal=self.principal, project=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class MemberViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrganizationScopedViewSet):
    permission_by_action = {"partial_update": Perm.MEMBERS_MANAGE}
    serializer_class = s.MemberOut
    filterset_class = MemberFilter
    http_method_names = ["get", "patch", "delete", "head", "options"]

    def scoped_queryset(self, principal: Principal) -> QuerySet:
        return selectors.member_list(principal=principal)

    @extend_schema(request=s.MemberPatchIn, responses=s.MemberOut)
    def partial_update(self, request: Request, pk: str) -> Response:
        member = self.get_object()  # a stranger's object is 404 whatever the body
        data = s.MemberPatchIn(data=request.data)
        data.is_valid(raise_exception=True)
        projects = data.validated_data.get("projects")
        if projects is not None:
            projects = selectors.projects_by_ids(principal=self.principal, project_ids=projects)
        member = member_update(principal=self.principal, member=member,
                                        role=data.validated_data.get("role"), projects=projects)
        return Response(s.MemberOut(selectors.member_get(principal=self.principal, member_id=member.id)).data)

    @extend_schema(responses={204: None}, description="Remove a member (or leave, for your own membership).")
    def destroy(self, request: Request, pk: str) -> Response:
        member_remove(principal=self.principal, member=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class InvitationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrganizationScopedViewSet):
    permission_by_action = {action: Perm.MEMBERS_MANAGE for action in ("list", "retrieve", "create", "destroy")}
    serializer_class = s.InvitationOut
    filterset_class = InvitationFilter
    http_method_names = ["get", "post", "delete", "head", "options"]

    def scoped_queryset(self, principal: Principal) -> QuerySet:
        return selectors.invitation_list(principal=principal)

    @extend_schema(request=s.InvitationIn, responses={201: s.InvitationOut})
    def create(self, request: Request) -> Response:
        data = s.InvitationIn(data=request.data)
        data.is_valid(raise_exception=True)
        projects = selectors.projects_by_ids(principal=self.principal, project_ids=data.validated_data["projects"])
        invitation = invitation_create(principal=self.principal, email=data.validated_data["email"],
                                                role=data.validated_data["role"], projects=projects)
        return Response(s.InvitationOut(invitation).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None}, description="Revoke a pending invitation.")
    def destroy(self, request: Request, pk: str) -> Response:
        invitation_revoke(principal=self.principal, invitation=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class InvitationAcceptView(IdempotentPostMixin, APIView):
    """Accept an invitation by its token: a new user sets a password; an existing one proves it."""

    permission_classes = [AllowAny]
    throttle_classes = [ClientIpRateThrottle]

    def initial(self, request: Request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        self.begin_idempotency(request, scope=f"invitation-accept:{client_ip(request)}")

    @extend_schema(request=s.InvitationAcceptIn, responses={200: s.InvitationAcceptOut})
    def post(self, request: Request) -> Response:
        data = s.InvitationAcceptIn(data=request.data)
        data.is_valid(raise_exception=True)
        user = request.user if getattr(request.user, "is_authenticated", False) and not request.auth else None
        membership = invitation_accept(
            **data.validated_data, session_user=user, ip=client_ip(request),
            user_agent=request.headers.get("User-Agent", ""),
        )
        body = {"organization": membership.organization, "member": membership}
        return Response(s.InvitationAcceptOut(body).data, status=status.HTTP_200_OK)


class ApiKeyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrganizationScopedViewSet):
    permission_by_action = {action: Perm.API_KEYS_MANAGE for action in ("list", "retrieve", "create", "destroy")}
    serializer_class = s.ApiKeyOut
    filterset_class = ApiKeyFilter
    http_method_names = ["get", "post", "delete", "head", "options"]

    def scoped_queryset(self, principal: Principal) -> QuerySet:
        return selectors.api_key_list(principal=principal)

    @extend_schema(request=s.ApiKeyIn, responses={201: s.ApiKeyCreatedOut})
    def create(self, request: Request) -> Response:
        data = s.ApiKeyIn(data=request.data)
        data.is_valid(raise_exception=True)
        projects = selectors.projects_by_ids(principal=self.principal, project_ids=data.validated_data["projects"])
        api_key, secret = api_key_create(
            principal=self.principal, name=data.validated_data["name"], role=data.validated_data["role"],
            projects=projects, expires_at=data.validated_data["expires_at"],
            service=data.validated_data["service"],
        )
        api_key.key = secret
        return Response(s.ApiKeyCreatedOut(api_key).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None}, description="Revoke the key; it stops working at once.")
    def destroy(self, request: Request, pk: str) -> Response:
        api_key_revoke(principal=self.principal, api_key=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class AuditEventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrganizationScopedViewSet):
    permission_by_action = {"list": Perm.AUDIT_READ, "retrieve": Perm.AUDIT_READ}
    serializer_class = s.AuditEventOut
    filterset_class = AuditEventFilter

    def scoped_queryset(self, principal: Principal) -> QuerySet:
        return selectors.audit_event_list(principal=principal)
