"""``/deployments/{id}/preview`` (what a change would do, read-only) and ``/deployments/{id}/copy-settings`` (issue 18,
items 4 and 5), on the deployment-scoped base: another organization's deployment is a 404."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from controlplane.api.serializers import InputSerializer
from deployments import selectors
from deployments.api.base import DeploymentScopedViewSet
from deployments.api.operations import OperationOut, accepted
from deployments.copy_settings import deployment_copy_settings
from deployments.preview import CHANGES, change_preview
from projects.roles import Perm


class PreviewIn(InputSerializer):
    change = serializers.ChoiceField(choices=CHANGES)
    spec = serializers.CharField(required=False, max_length=64, help_text="The spec to scale to (`scale`).")
    version = serializers.CharField(required=False, max_length=32, help_text="The broker version (`upgrade`).")


class DisconnectOut(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["none", "rolling", "full_restart"])
    estimated_seconds = serializers.IntegerField()
    detail = serializers.CharField()


class PriceChangeOut(serializers.Serializer):
    currency = serializers.CharField()
    hourly_before = serializers.DecimalField(max_digits=12, decimal_places=4)
    hourly_after = serializers.DecimalField(max_digits=12, decimal_places=4)
    monthly_before = serializers.DecimalField(max_digits=14, decimal_places=2)
    monthly_after = serializers.DecimalField(max_digits=14, decimal_places=2)


class ProrationOut(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["annual_term", "scale_in_term"])
    amount = serializers.DecimalField(max_digits=14, decimal_places=2,
                                      help_text="Charged on the next invoice (negative: a credit).")
    currency = serializers.CharField()
    term_start = serializers.DateTimeField()
    term_end = serializers.DateTimeField()
    invoiced_on = serializers.DateField()
    saving = serializers.DecimalField(max_digits=14, decimal_places=2, required=False,
                                      help_text="`annual_term`: against a year of hours.")


class WindowOut(serializers.Serializer):
    in_window_now = serializers.BooleanField()
    next_window_start = serializers.DateTimeField(allow_null=True,
                                                  help_text="The occurrence open now, else the next one.")
    next_window_end = serializers.DateTimeField(allow_null=True)


class PreviewOut(serializers.Serializer):
    change = serializers.CharField()
    spec_before = serializers.CharField()
    spec_after = serializers.CharField()
    disconnect = DisconnectOut()
    price = PriceChangeOut()
    proration = ProrationOut(allow_null=True)
    window = WindowOut()


class CopySettingsIn(InputSerializer):
    # "from" is a Python keyword: the field goes into the class namespace under its wire name.
    vars()["from"] = serializers.RegexField(r"^dep_[a-z0-9]{1,28}$", max_length=32,
                                            help_text="The deployment to copy from (same organization).")


class DeploymentChangesViewSet(DeploymentScopedViewSet):
    """Previews of changes, and copying settings between deployments."""

    # The preview is read-only: whoever may see the deployment may see what a change would do (DEPLOYMENTS_WRITE
    # is checked when the change itself is asked for).
    permission_by_action = {"preview": Perm.READ, "copy_settings": Perm.DEPLOYMENTS_WRITE}
    http_method_names = ["post", "options"]

    @extend_schema(request=PreviewIn, responses=PreviewOut,
                   description="What a change would do, without doing it: the client disconnect (`none`; `rolling`: "
                               "the nodes restart one at a time, each client reconnects; `full_restart`: the only "
                               "node restarts) with an estimate, the price before and after (a month is 730 h), the "
                               "proration billing would charge (a switch to annual: the term; a scale inside an "
                               "annual term: the prorated difference), and the maintenance window. `change`: "
                               "`scale` (with `spec`), `switch_to_annual`, `upgrade` (with `version`). Errors as the "
                               "change itself would answer (400 bad spec or version, 409 wrong state).")
    @action(detail=True, methods=["post"])
    def preview(self, request: Request, pk: str) -> Response:
        deployment = self.get_object()  # a stranger's deployment is 404 whatever the body
        data = PreviewIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        spec = None
        if values.get("spec"):
            spec = selectors.spec_get(flagship_enabled=self.principal.organization.flagship_enabled,
                                      spec_id=values["spec"])
        result = change_preview(principal=self.principal, deployment=deployment, change=values["change"], spec=spec,
                                version=values.get("version", ""))
        return Response(PreviewOut(result.as_dict()).data)

    @extend_schema(request=CopySettingsIn, responses={202: OperationOut},
                   description="Replaces this deployment's HTTP authentication configuration (header values "
                               "included, copied encrypted and never shown) and ACL with those of `from` (same "
                               "organization), as one operation (`copy_settings`; `Location` to poll). A changed "
                               "HTTP authentication configuration then rolls the nodes one at a time; the ACL "
                               "reaches the broker without a restart. 400 for itself, 404 for a deployment the "
                               "caller does not see, 409 unless this one is running or stopped.")
    @action(detail=True, methods=["post"], url_path="copy-settings", url_name="copy-settings")
    def copy_settings(self, request: Request, pk: str) -> Response:
        target = self.get_object()
        data = CopySettingsIn(data=request.data)
        data.is_valid(raise_exception=True)
        source = selectors.deployment_get(principal=self.principal, deployment_id=data.validated_data["from"])
        operation = deployment_copy_settings(principal=self.principal, target=target, source=source)
        return accepted(OperationOut(operation).data, operation)
