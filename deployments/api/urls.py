from rest_framework.routers import SimpleRouter

from deployments.api import views
from deployments.api.changes import DeploymentChangesViewSet
from deployments.api.maintenance import DeploymentMaintenanceViewSet, ProjectMaintenanceViewSet
from deployments.api.mqtt_access import DeploymentMqttAccessViewSet
from deployments.api.operations import OperationViewSet
from deployments.api.peering import PeeringViewSet
from deployments.api.upgrades import DeploymentUpgradeViewSet

router = SimpleRouter(trailing_slash=False)
router.register("regions", views.RegionViewSet, basename="region")
router.register("specs", views.SpecViewSet, basename="spec")
router.register("deployments", views.DeploymentViewSet, basename="deployment")
router.register("deployments", DeploymentMqttAccessViewSet, basename="deployment-mqtt-access")
router.register("deployments", DeploymentMaintenanceViewSet, basename="deployment-maintenance")
router.register("deployments", DeploymentChangesViewSet, basename="deployment-changes")
router.register("deployments", DeploymentUpgradeViewSet, basename="deployment-upgrade")
router.register("projects", ProjectMaintenanceViewSet, basename="project-maintenance")
router.register("peerings", PeeringViewSet, basename="peering")
router.register("operations", OperationViewSet, basename="operation")

urlpatterns = router.urls
