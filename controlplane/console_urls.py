"""Everything under /console/ (namespace ``console``): each app's pages, composed here as the API's are in
``controlplane.api.urls``. One flat list, in this order (the first pattern that matches a path wins), so every
page's name and path is the one its app gives it."""

from alerts.console import urls as alert_urls
from billing.console import urls as billing_urls
from deployments.console import urls as deployment_urls
from projects.console import urls as project_urls

urlpatterns = [
    *project_urls.urlpatterns,
    *alert_urls.urlpatterns,
    *deployment_urls.urlpatterns,
    *billing_urls.urlpatterns,
]
