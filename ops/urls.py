from django.urls import path

from ops.views import FleetOverviewView, TaskFailureRetryView

urlpatterns = [
    path("overview/", FleetOverviewView.as_ops_view(), name="ops-overview"),
    path("overview/task-failures/<int:failure_id>/retry", TaskFailureRetryView.as_ops_view(),
         name="ops-task-failure-retry"),
]
