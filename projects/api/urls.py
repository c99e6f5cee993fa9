from django.urls import path
from rest_framework.routers import SimpleRouter

from projects.api import sso, views

router = SimpleRouter(trailing_slash=False)
router.register("projects", views.ProjectViewSet, basename="project")
router.register("members", views.MemberViewSet, basename="member")
router.register("invitations", views.InvitationViewSet, basename="invitation")
router.register("api-keys", views.ApiKeyViewSet, basename="api-key")
router.register("audit-events", views.AuditEventViewSet, basename="audit-event")
router.register("scim-groups", views.ScimGroupViewSet, basename="scim-group")
router.register("sessions", views.ConsoleSessionViewSet, basename="session")
router.register("organization/sso/domains", sso.SsoDomainViewSet, basename="sso-domain")

urlpatterns = [
    path("signup", views.SignupView.as_view(), name="signup"),
    path("organization", views.OrganizationViewSet.as_view({"get": "retrieve", "patch": "partial_update"}),
         name="organization"),
    path("organization/security",
         views.OrganizationSecurityViewSet.as_view({"get": "retrieve", "patch": "partial_update"}),
         name="organization-security"),
    path("organization/sso",
         sso.OrganizationSsoViewSet.as_view({"get": "retrieve", "put": "update", "delete": "destroy"}),
         name="organization-sso"),
    path("organization/scim-token",
         views.ScimTokenViewSet.as_view({"get": "retrieve", "post": "create", "delete": "destroy"}),
         name="organization-scim-token"),
    path("invitations/accept", views.InvitationAcceptView.as_view(), name="invitation-accept"),
    path("auth/password/reset", views.PasswordResetView.as_view(), name="password-reset"),
    path("auth/password/reset/confirm", views.PasswordResetConfirmView.as_view(), name="password-reset-confirm"),
    path("auth/password/change", views.PasswordChangeView.as_view(), name="password-change"),
    *router.urls,
]
