"""Projects' pages of the console; ``controlplane.console_urls`` composes them with the other apps' pages under
the ``console`` namespace."""

from django.urls import path

from projects.console.views import api_keys, audit, auth, members, scim, security, sso, sso_settings, two_factor
from projects.console.views import projects as project_views

urlpatterns = [
    path("", project_views.ProjectListView.as_view(), name="home"),
    path("login", auth.LoginView.as_view(), name="login"),
    path("login/two-factor", two_factor.TwoFactorLoginView.as_view(), name="login-two-factor"),
    path("login/sso", sso.SsoLoginView.as_view(), name="login-sso"),
    path("sso/callback", sso.SsoCallbackView.as_view(), name="sso-callback"),
    path("logout", auth.LogoutView.as_view(), name="logout"),
    path("signup", auth.SignupView.as_view(), name="signup"),
    path("password/reset", auth.PasswordResetView.as_view(), name="password-reset"),
    path("password/reset/<str:token>", auth.PasswordResetConfirmView.as_view(), name="password-reset-confirm"),
    path("account/password", auth.PasswordChangeView.as_view(), name="password-change"),
    path("account/two-factor", two_factor.TwoFactorView.as_view(), name="two-factor"),
    path("account/two-factor/setup", two_factor.TwoFactorSetupView.as_view(), name="two-factor-setup"),
    path("account/two-factor/recovery-codes", two_factor.TwoFactorRecoveryCodesView.as_view(),
         name="two-factor-recovery-codes"),
    path("account/sessions", security.SessionListView.as_view(), name="sessions"),
    path("account/sessions/end-others", security.SessionsEndOthersView.as_view(), name="sessions-end-others"),
    path("account/sessions/<str:object_id>/end", security.SessionEndView.as_view(), name="session-end"),
    path("settings/security", security.SecuritySettingsView.as_view(), name="security"),
    path("settings/sso", sso_settings.SsoSettingsView.as_view(), name="sso-settings"),
    path("settings/sso/unlink", sso_settings.SsoUnlinkView.as_view(), name="sso-unlink"),
    path("settings/sso/domains", sso_settings.SsoDomainAddView.as_view(), name="sso-domain-add"),
    path("settings/sso/domains/<str:object_id>/check-dns",
         sso_settings.SsoDomainActionView.as_view(operation="check-dns"), name="sso-domain-check-dns"),
    path("settings/sso/domains/<str:object_id>/remove", sso_settings.SsoDomainActionView.as_view(operation="remove"),
         name="sso-domain-remove"),
    path("sso/domains/verify/<str:token>", sso_settings.SsoDomainVerifyView.as_view(), name="sso-domain-verify"),
    path("settings/scim", scim.ScimSettingsView.as_view(), name="scim"),
    path("switch-organization", auth.OrganizationSwitchView.as_view(), name="organization-switch"),
    path("projects/new", project_views.ProjectCreateView.as_view(), name="project-create"),
    path("projects/<str:project_id>", project_views.ProjectEditView.as_view(), name="project-edit"),
    path("projects/<str:project_id>/delete", project_views.ProjectDeleteView.as_view(), name="project-delete"),
    path("members", members.MemberListView.as_view(), name="members"),
    path("members/invite", members.InvitationCreateView.as_view(), name="invitation-create"),
    path("members/<str:member_id>", members.MemberEditView.as_view(), name="member-edit"),
    path("members/<str:object_id>/remove", members.MemberRemoveView.as_view(), name="member-remove"),
    path("invitations/<str:object_id>/revoke", members.InvitationRevokeView.as_view(), name="invitation-revoke"),
    path("invitations/<str:token>", members.InvitationAcceptView.as_view(), name="invitation-accept"),
    path("api-keys", api_keys.ApiKeyListView.as_view(), name="api-keys"),
    path("api-keys/new", api_keys.ApiKeyCreateView.as_view(), name="api-key-create"),
    path("api-keys/<str:object_id>/revoke", api_keys.ApiKeyRevokeView.as_view(), name="api-key-revoke"),
    path("api-keys/<str:object_id>/created", api_keys.ApiKeyCreatedView.as_view(), name="api-key-created"),
    path("audit", audit.AuditLogView.as_view(), name="audit"),
    path("outbox", audit.OutboxView.as_view(), name="outbox"),
]
