from rest_framework.routers import SimpleRouter

from alerts.api import views
from alerts.api.metrics import DeploymentMetricsViewSet

router = SimpleRouter(trailing_slash=False)
router.register("alert-channels", views.AlertChannelViewSet, basename="alert-channel")
router.register("alert-rules", views.AlertRuleViewSet, basename="alert-rule")
router.register("alerts", views.AlertViewSet, basename="alert")
router.register("notifications", views.NotificationViewSet, basename="notification")
router.register("deployments", DeploymentMetricsViewSet, basename="deployment")  # only /deployments/{id}/metrics

urlpatterns = router.urls
