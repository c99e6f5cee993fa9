"""Billing pages of the console; composed by ``controlplane.console_urls`` under its ``console`` namespace."""

from django.urls import path

from billing.console import views

urlpatterns = [
    path("billing", views.UsageView.as_view(), name="billing"),
    path("billing/budgets/new", views.BudgetCreateView.as_view(), name="billing-budget-create"),
    path("billing/budgets/<str:budget_id>", views.BudgetEditView.as_view(), name="billing-budget-edit"),
    path("billing/budgets/<str:budget_id>/delete", views.BudgetDeleteView.as_view(), name="billing-budget-delete"),
    path("billing/account", views.BillingAccountView.as_view(), name="billing-account"),
    path("billing/payment-method/confirm", views.PaymentMethodConfirmView.as_view(),
         name="billing-payment-method-confirm"),
    path("billing/invoices", views.InvoiceListView.as_view(), name="billing-invoices"),
    path("billing/invoices/preview", views.InvoicePreviewView.as_view(), name="billing-invoice-preview"),
    path("billing/invoices/<str:invoice_id>", views.InvoiceDetailView.as_view(), name="billing-invoice"),
    path("deployments/<str:deployment_id>/subscription/switch-to-annual", views.SwitchToAnnualView.as_view(),
         name="deployment-switch-to-annual"),
]
