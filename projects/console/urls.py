from django.urls import path

from alerts.console import urls as alert_urls
from billing.console import urls as billing_urls
from deployments.console import urls as deployment_urls
from projects.console import views

urlpatterns = [
    path("", views.ProjectListView.as_view(), name="home"),
    path("login", views.LoginView.as_view(), name="login"),
    path("logout", views.LogoutView.as_view(), name="logout"),
    path("signup", views.SignupView.as_view(), name="signup"),
    path("password/reset", views.PasswordResetView.as_view(), name="password-reset"),
    path("password/reset/<str:token>", views.PasswordResetConfirmView.as_view(), name="password-reset-confirm"),
    path("account/password", views.PasswordChangeView.as_view(), name="password-change"),
    path("switch-organization", views.OrganizationSwitchView.as_view(), name="organization-switch"),
    path("projects/new", views.ProjectCreateView.as_view(), name="project-create"),
    path("projects/<str:project_id>", views.ProjectEditView.as_view(), name="project-edit"),
    path("projects/<str:project_id>/delete", views.ProjectDeleteView.as_view(), name="project-delete"),
    path("members", views.MemberListView.as_view(), name="members"),
    path("members/invite", views.InvitationCreateView.as_view(), name="invitation-create"),
    path("members/<str:member_id>", views.MemberEditView.as_view(), name="member-edit"),
    path("members/<str:object_id>/remove", views.MemberRemoveView.as_view(), name="member-remove"),
    path("invitations/<str:object_id>/revoke", views.InvitationRevokeView.as_view(), name="invitation-revoke"),
    path("invitations/<str:token>", views.InvitationAcceptView.as_view(), name="invitation-accept"),
    path("api-keys", views.ApiKeyListView.as_view(), name="api-keys"),
    path("api-keys/new", views.ApiKeyCreateView.as_view(), name="api-key-create"),
    path("api-keys/<str:object_id>/revoke", views.ApiKeyRevokeView.as_view(), name="api-key-revoke"),
    path("api-keys/<str:object_id>/created", views.ApiKeyCreatedView.as_view(), name="api-key-created"),
    path("audit", views.AuditLogView.as_view(), name="audit"),
    path("outbox", views.OutboxView.as_view(), name="outbox"),
    *alert_urls.urlpatterns,
    *deployment_urls.urlpatterns,
    *billing_urls.urlpatterns,
]
