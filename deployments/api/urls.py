from rest_framework.routers import SimpleRouter

from deployments.api import views

router = SimpleRouter(trailing_slash=False)
router.register("regions", views.RegionViewSet, basename="region")
router.register("specs", views.SpecViewSet, basename="spec")
router.register("deployments", views.DeploymentViewSet, basename="deployment")

urlpatterns = router.urls
