"""Billing API: ``/billing/account``, ``/billing/usage``, ``/invoices`` and ``/deployments/{id}/subscription``
(billing's own viewset on the ``deployments`` prefix, derived from ``deployments.facade.DeploymentScopedViewSet``
so the deployment is resolved and scoped as ``/deployments/{id}`` does)."""

from __future__ import annotations

from datetime import UTC

import django_filters
from django.db.models import QuerySet
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing import selectors, stripe_gateway
from billing.api import serializers as s
from billing.models import Budget, Invoice
from billing.pdf import invoice_pdf
from billing.services.accounts import billing_account_update
from billing.services.budgets import budget_create, budget_delete, budget_update
from billing.services.cards import payment_method_setup_complete, payment_method_setup_start
from billing.services.subscriptions import subscription_switch_to_annual
from billing.services.webhooks import stripe_event_receive
from controlplane import errors
from deployments.facade import DeploymentScopedViewSet, operation_accepted, operation_latest_for_deployment
from projects.api.base import OrganizationScopedViewSet
from projects.roles import Perm
from projects.tenancy import Principal


class BillingAccountViewSet(OrganizationScopedViewSet):
    """The organization's billing details (created on first read)."""

    permission_by_action = {"retrieve": Perm.BILLING_READ, "partial_update": Perm.BILLING_MANAGE}
    serializer_class = s.BillingAccountOut

    @extend_schema(responses=s.BillingAccountOut)
    def retrieve(self, request: Request) -> Response:
        return Response(s.BillingAccountOut(selectors.billing_account_get(principal=self.principal)).data)

    @extend_schema(request=s.BillingAccountPatchIn, responses=s.BillingAccountOut,
                   description="400 for an invalid VAT number or one that does not match the country.")
    def partial_update(self, request: Request) -> Response:
        data = s.BillingAccountPatchIn(data=request.data)
        data.is_valid(raise_exception=True)
        account = billing_account_update(principal=self.principal, **data.validated_data)
        return Response(s.BillingAccountOut(account).data)


class PaymentMethodViewSet(OrganizationScopedViewSet):
    """Card binding through a Stripe SetupIntent (usage `off_session`: invoices are charged automatically)."""

    permission_by_action = {"setup": Perm.BILLING_MANAGE, "confirm": Perm.BILLING_MANAGE}
    serializer_class = s.PaymentMethodSetupOut

    @extend_schema(request=None, responses={200: s.PaymentMethodSetupOut},
                   description="Starts binding a card: confirm the returned `client_secret` with Stripe.js "
                               "(`confirmCardSetup`). 409 when card payments are offline in this installation; "
                               "503 when Stripe cannot be reached.")
    def setup(self, request: Request) -> Response:
        return Response(s.PaymentMethodSetupOut(payment_method_setup_start(principal=self.principal)).data)

    @extend_schema(request=s.PaymentMethodConfirmIn, responses={200: s.BillingAccountOut},
                   description="After Stripe.js confirmed the SetupIntent: makes its card the default (the "
                               "`setup_intent.succeeded` webhook does the same). 409 if it has not succeeded.")
    def confirm(self, request: Request) -> Response:
        data = s.PaymentMethodConfirmIn(data=request.data)
        data.is_valid(raise_exception=True)
        if not stripe_gateway.is_configured():
            raise stripe_gateway.StripeOffline(stripe_gateway.OFFLINE_DETAIL)
        account = selectors.billing_account_get(principal=self.principal)
        account = payment_method_setup_complete(
            account=account, setup_intent_id=data.validated_data["setup_intent"], principal=self.principal)
        return Response(s.BillingAccountOut(account).data)


class StripeWebhookView(APIView):
    """Stripe's events. No credential: the `Stripe-Signature` header, checked on the raw body, is the proof.

    Outside the tenancy base on purpose: the event names its customer, not the caller.
    """

    authentication_classes: list = []
    permission_classes = [AllowAny]
    # Stripe retries deliveries itself; throttling them would only delay payments.
    throttle_classes: list = []

    @extend_schema(request={"application/json": OpenApiTypes.OBJECT}, responses={200: s.WebhookAckOut}, auth=[],
                   description="400 when the signature is missing, forged or older than the tolerance. Each "
                               "event is handled once, however often and in whatever order it is delivered.")
    def post(self, request: Request) -> Response:
        # The raw bytes, not request.data: the signature covers the body exactly as sent.
        _, handled = stripe_event_receive(payload=request.body,
                                          signature=request.headers.get("Stripe-Signature"))
        return Response(s.WebhookAckOut({"received": True, "duplicate": not handled}).data)


class UsageViewSet(OrganizationScopedViewSet):
    permission_by_action = {"retrieve": Perm.BILLING_READ}
    serializer_class = s.UsageOut

    @extend_schema(parameters=[OpenApiParameter("since", str, description="RFC 3339; default: start of the month"),
                               OpenApiParameter("until", str, description="RFC 3339; default: now")],
                   responses=s.UsageOut)
    def retrieve(self, request: Request) -> Response:
        query = s.UsageQueryIn(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        now = timezone.now().astimezone(UTC)
        since = query.validated_data.get("since") or now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        until = query.validated_data.get("until") or now
        if since > until:
            raise errors.ValidationFailed("since is after until.", errors={"since": ["Must not be after until."]})
        summary = selectors.usage_summary(principal=self.principal, since=since, until=until, now=now)
        return Response(s.UsageOut(summary).data)


class InvoiceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrganizationScopedViewSet):
    """Monthly invoices. Money is a decimal string plus `currency`."""

    permission_by_action = {"list": Perm.BILLING_READ, "retrieve": Perm.BILLING_READ, "pdf": Perm.BILLING_READ}
    serializer_class = s.InvoiceOut
    queryset = Invoice.objects.none()

    def scoped_queryset(self, principal: Principal) -> QuerySet:
        return selectors.invoice_list(principal=principal)

    @extend_schema(responses={(200, "application/pdf"): OpenApiTypes.BINARY},
                   description="The invoice as a PDF document.")
    def pdf(self, request: Request, pk: str) -> HttpResponse:
        invoice = self.get_object()
        response = HttpResponse(invoice_pdf(invoice), content_type="application/pdf")
        response["Content-Disposition"] = f'inline; filename="{invoice.number}.pdf"'
        return response


class DeploymentSubscriptionViewSet(DeploymentScopedViewSet):
    """How a deployment is paid, under ``/deployments/{id}/``."""

    @extend_schema(request=None, responses=s.SubscriptionOut,
                   description="How the deployment is paid: `hourly` (default) or a prepaid `annual` term.")
    @action(detail=True, methods=["get"], url_path="subscription")
    def subscription(self, request: Request, pk: str) -> Response:
        self.principal.require(Perm.BILLING_READ)
        deployment = self.get_object()
        return Response(s.SubscriptionOut(selectors.subscription_get(principal=self.principal,
                                                                     deployment=deployment)).data)

    @extend_schema(request=s.SwitchToAnnualIn, responses={200: s.SubscriptionOut},
                   description="Hourly metering stops now and a 12-month term starts, charged on the next "
                               "invoice. 409 if the deployment is already annual.")
    @action(detail=True, methods=["post"], url_path="subscription/switch-to-annual")
    def switch_to_annual(self, request: Request, pk: str) -> Response:
        self.principal.require(Perm.BILLING_MANAGE)
        deployment = self.get_object()
        data = s.SwitchToAnnualIn(data=request.data)
        data.is_valid(raise_exception=True)
        subscription = subscription_switch_to_annual(principal=self.principal, deployment=deployment,
                                                     renew=data.validated_data["renew"])
        operation = operation_latest_for_deployment(principal=self.principal, deployment_id=deployment.id,
                                                    type="switch_to_annual")
        response = operation_accepted(s.SubscriptionOut(subscription).data, operation)
        response.status_code = status.HTTP_200_OK  # the contract's 200: the switch is done when it answers
        return response


class BudgetFilter(django_filters.FilterSet):
    project = django_filters.CharFilter(field_name="project_id")

    class Meta:
        model = Budget
        fields = ["project"]


class BudgetViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrganizationScopedViewSet):
    """Monthly budgets of the organization or of one project; 50, 80 and 100% notify once a month each."""

    permission_by_action = {"list": Perm.BILLING_READ, "retrieve": Perm.BILLING_READ,
                            "create": Perm.BILLING_MANAGE, "partial_update": Perm.BILLING_MANAGE,
                            "destroy": Perm.BILLING_MANAGE}
    serializer_class = s.BudgetOut
    filterset_class = BudgetFilter
    queryset = Budget.objects.none()
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def scoped_queryset(self, principal: Principal) -> QuerySet:
        return selectors.budget_list(principal=principal)

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        assert page is not None  # every list here is paginated
        spent = selectors.budgets_spent(budgets=page, now=timezone.now())
        body = s.BudgetOut(page, many=True, context={**self.get_serializer_context(), "spent": spent}).data
        return self.get_paginated_response(body)

    @extend_schema(request=s.BudgetIn, responses={201: s.BudgetOut},
                   description="400 for an amount not above 0, or a project or channel that is not the "
                               "organization's; 409 if the scope already has a budget.")
    def create(self, request: Request) -> Response:
        data = s.BudgetIn(data=request.data)
        data.is_valid(raise_exception=True)
        budget = budget_create(principal=self.principal, **data.validated_data)
        return Response(s.BudgetOut(budget).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.BudgetPatchIn, responses=s.BudgetOut,
                   description="The scope (`project`) cannot change: delete and create instead.")
    def partial_update(self, request: Request, pk: str) -> Response:
        budget = self.get_object()
        data = s.BudgetPatchIn(data=request.data)
        data.is_valid(raise_exception=True)
        budget = budget_update(principal=self.principal, budget=budget, **data.validated_data)
        return Response(s.BudgetOut(budget).data)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, pk: str) -> Response:
        budget_delete(principal=self.principal, budget=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
