from rest_framework.routers import SimpleRouter

from deployments.api import views

router = SimpleRouter(trailing_slash=False)
router.register("regions", views.RegionViewSet, basename="region")
router.register("specs", views.SpecViewSet, basename="spec")

urlpatterns = router.urls
