from django.contrib import admin, messages

from billing import stripe_gateway
from billing.models import (
    BillingAccount,
    Budget,
    BudgetCrossing,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    Payment,
    StripeEvent,
    Subscription,
    UsageRecord,
    VatStatus,
)
from billing.services.accounts import billing_account_operator_update, vat_number_recheck_request
from controlplane.queue import enqueue_on_commit
from projects.ops_admin import (
    ReadOnlyModelAdmin,
    ReadOnlyTabularInline,
    audit_staff_action,
    staff_principal,
)


@admin.register(BillingAccount)
class BillingAccountAdmin(ReadOnlyModelAdmin):
    list_display = ("id", "organization", "legal_name", "country", "vat_number", "vat_status", "vat_checked_at",
                    "tax_exempt", "stripe_customer_id", "card_last4", "payment_failed_at", "suspended_at")
    list_filter = ("vat_status", "tax_exempt", "country", ("payment_failed_at", admin.EmptyFieldListFilter),
                   ("suspended_at", admin.EmptyFieldListFilter))
    search_fields = ("id", "organization__id", "organization__name", "legal_name", "vat_number",
                     "vat_consultation_number", "stripe_customer_id")
    actions = ["mark_tax_exempt", "clear_tax_exempt", "mark_vat_valid", "recheck_vat_number"]

    def has_change_permission(self, request, obj=None) -> bool:
        # Actions need it; every field stays read-only.
        return obj is None and request.user.is_staff

    def _update(self, request, queryset, **changes) -> None:
        for account in queryset:
            billing_account_operator_update(principal=staff_principal(request, account), account=account,
                                            **changes)
        self.message_user(request, f"Updated {queryset.count()} account(s).", messages.SUCCESS)

    @admin.action(description="Mark tax exempt")
    def mark_tax_exempt(self, request, queryset) -> None:
        self._update(request, queryset, tax_exempt=True)

    @admin.action(description="Clear tax exempt")
    def clear_tax_exempt(self, request, queryset) -> None:
        self._update(request, queryset, tax_exempt=False)

    @admin.action(description="Mark VAT number valid (confirmed in VIES)")
    def mark_vat_valid(self, request, queryset) -> None:
        self._update(request, queryset, vat_status=VatStatus.VALID)

    @admin.action(description="Check VAT number in VIES again")
    def recheck_vat_number(self, request, queryset) -> None:
        queued = sum(vat_number_recheck_request(principal=staff_principal(request, account),
                                                account=account) for account in queryset)
        self.message_user(request, f"Queued a VIES check for {queued} account(s); GB numbers and accounts "
                                   "without a number are not checked.", messages.SUCCESS)


class PaymentInline(ReadOnlyTabularInline):
    model = Payment
    readonly_fields = ("attempt", "status", "amount", "currency", "stripe_payment_intent_id", "idempotency_key",
                       "error_code", "error_message", "created_at", "updated_at")


class InvoiceLineInline(ReadOnlyTabularInline):
    model = InvoiceLine
    readonly_fields = ("position", "description", "quantity", "unit", "unit_price", "amount", "deployment")


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyModelAdmin):
    list_display = ("number", "organization", "period_start", "currency", "subtotal", "vat_amount", "total", "status",
                    "payment_attempts", "payment_failed_at", "next_payment_attempt_at", "paid_at")
    list_filter = ("status", "currency", ("payment_failed_at", admin.EmptyFieldListFilter))
    search_fields = ("id", "number", "organization__id", "organization__name", "payments__stripe_payment_intent_id")
    inlines = [InvoiceLineInline, PaymentInline]
    actions = ["retry_collection"]

    def has_change_permission(self, request, obj=None) -> bool:
        # The action needs it; every field stays read-only.
        return obj is None and request.user.is_staff

    @admin.action(description="Retry collecting now (charge the card on file)")
    def retry_collection(self, request, queryset) -> None:
        if not stripe_gateway.is_configured():
            self.message_user(request, stripe_gateway.OFFLINE_DETAIL, messages.ERROR)
            return
        queued = 0
        for invoice in queryset.filter(status=InvoiceStatus.OPEN, total__gt=0):
            audit_staff_action(request, invoice, "ops.invoice.retry_collection", {"number": invoice.number})
            enqueue_on_commit("billing.tasks.invoice_collect", invoice.pk, force=True)
            queued += 1
        self.message_user(request, f"Queued {queued} open invoice(s) for collection.", messages.SUCCESS)


@admin.register(StripeEvent)
class StripeEventAdmin(ReadOnlyModelAdmin):
    list_display = ("stripe_id", "type", "created", "received_at", "deliveries", "processed_at", "outcome")
    list_filter = ("type", ("processed_at", admin.EmptyFieldListFilter))
    search_fields = ("stripe_id", "type", "outcome")
    date_hierarchy = "received_at"


@admin.register(Payment)
class PaymentAdmin(ReadOnlyModelAdmin):
    list_display = ("id", "invoice", "organization", "attempt", "status", "amount", "currency",
                    "stripe_payment_intent_id", "error_code", "created_at")
    list_filter = ("status", "currency")
    search_fields = ("id", "invoice__number", "organization__id", "stripe_payment_intent_id")


@admin.register(Subscription)
class SubscriptionAdmin(ReadOnlyModelAdmin):
    list_display = ("deployment", "organization", "mode", "term_start", "term_end", "annual_price", "renews")
    list_filter = ("mode", "renews")
    search_fields = ("deployment__id", "organization__id")


@admin.register(UsageRecord)
class UsageRecordAdmin(ReadOnlyModelAdmin):
    list_display = ("deployment", "hour_start", "spec", "rate", "seconds", "hourly_price", "currency")
    list_filter = ("currency",)
    search_fields = ("deployment__id", "organization__id")
    date_hierarchy = "hour_start"


class BudgetCrossingInline(ReadOnlyTabularInline):
    model = BudgetCrossing
    readonly_fields = ("month", "threshold", "spent", "amount", "notified", "created_at")


@admin.register(Budget)
class BudgetAdmin(ReadOnlyModelAdmin):
    list_display = ("id", "organization", "project", "amount", "enabled", "created_at")
    list_filter = ("enabled",)
    search_fields = ("id", "organization__id", "organization__name", "project__id")
    inlines = [BudgetCrossingInline]
