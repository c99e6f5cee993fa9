from django.urls import path

from ops.views import FleetOverviewView, TaskFailureRetryView
from projects.ops_site import OpsTwoFactorSetupView

urlpatterns = [
    # Not behind the admin's login: it is the step between the password and the first code (projects/ops_site.py).
    path("two-factor/setup/", OpsTwoFactorSetupView.as_view(), name="ops-two-factor-setup"),
    path("overview/", FleetOverviewView.as_ops_view(), name="ops-overview"),
    path("overview/task-failures/<int:failure_id>/retry", TaskFailureRetryView.as_ops_view(),
         name="ops-task-failure-retry"),
]
