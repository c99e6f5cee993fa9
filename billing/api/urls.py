from django.urls import path, re_path
from rest_framework.routers import SimpleRouter

from billing.api import views

router = SimpleRouter(trailing_slash=False)
router.register("invoices", views.InvoiceViewSet, basename="invoice")
router.register("budgets", views.BudgetViewSet, basename="budget")
# Only /deployments/{id}/subscription and /subscription/switch-to-annual; /deployments itself is deployments'.
router.register("deployments", views.DeploymentSubscriptionViewSet, basename="deployment")

urlpatterns = [
    path("billing/account", views.BillingAccountViewSet.as_view({"get": "retrieve", "patch": "partial_update"}),
         name="billing-account"),
    path("billing/payment-method/setup", views.PaymentMethodViewSet.as_view({"post": "setup"}),
         name="billing-payment-method-setup"),
    path("billing/payment-method/confirm", views.PaymentMethodViewSet.as_view({"post": "confirm"}),
         name="billing-payment-method-confirm"),
    path("billing/stripe/webhook", views.StripeWebhookView.as_view(), name="billing-stripe-webhook"),
    path("billing/usage", views.UsageViewSet.as_view({"get": "retrieve"}), name="billing-usage"),
    re_path(r"^invoices/(?P<pk>[a-z]{3}_[a-z0-9]+)\.pdf$", views.InvoiceViewSet.as_view({"get": "pdf"}),
            name="invoice-pdf"),
    *router.urls,
]
