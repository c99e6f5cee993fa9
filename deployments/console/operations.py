"""Console: the operations under way on a deployment (a section of its page, polled while one runs), and the
organization's operations list."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from deployments import selectors as deployment_selectors
from deployments.operations import selectors
from deployments.operations.progress import ACTIVE
from projects.console.base import OrganizationConsoleView

#: How many operations the deployment section and the list page show (newest first).
SHOWN = 5
LISTED = 100


class DeploymentOperationsSectionView(OrganizationConsoleView):
    """The "Operations" section of the deployment page: loaded by htmx and polled every 2 s while one runs."""

    template_name = "console/deployments/_operations.html"

    def get(self, request: HttpRequest, deployment_id: str) -> HttpResponse:
        deployment = deployment_selectors.deployment_get(principal=self.principal, deployment_id=deployment_id)
        operations = list(selectors.operation_list(principal=self.principal).filter(deployment_id=deployment.id)
                          .order_by("-created_at")[:SHOWN])
        return self.render_page({"deployment": deployment, "operations": operations,
                                 "polling": any(op.status in ACTIVE for op in operations)})


class OperationListView(OrganizationConsoleView):
    template_name = "console/deployments/operations.html"

    def get(self, request: HttpRequest) -> HttpResponse:
        operations = list(selectors.operation_list(principal=self.principal).order_by("-created_at")[:LISTED])
        return self.render_page({"operations": operations,
                                 "polling": any(op.status in ACTIVE for op in operations)})
