from django.contrib import admin, messages

from billing import services
from billing.models import BillingAccount, Invoice, InvoiceLine, Subscription, UsageRecord, VatStatus
from controlplane.admin_base import ReadOnlyModelAdmin, ReadOnlyTabularInline, staff_principal


@admin.register(BillingAccount)
class BillingAccountAdmin(ReadOnlyModelAdmin):
    list_display = ("id", "organization", "legal_name", "country", "vat_number", "vat_status", "tax_exempt")
    list_filter = ("vat_status", "tax_exempt", "country")
    search_fields = ("id", "organization__id", "organization__name", "legal_name", "vat_number")
    actions = ["mark_tax_exempt", "clear_tax_exempt", "mark_vat_valid"]

    def has_change_permission(self, request, obj=None) -> bool:
        # Actions need it; every field stays read-only.
        return obj is None and request.user.is_staff

    def _update(self, request, queryset, **changes) -> None:
        for account in queryset:
            services.billing_account_operator_update(principal=staff_principal(request, account), account=account,
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


class InvoiceLineInline(ReadOnlyTabularInline):
    model = InvoiceLine
    readonly_fields = ("position", "description", "quantity", "unit", "unit_price", "amount", "deployment")


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyModelAdmin):
    list_display = ("number", "organization", "period_start", "currency", "subtotal", "vat_amount", "total", "status")
    list_filter = ("status", "currency")
    search_fields = ("id", "number", "organization__id", "organization__name")
    inlines = [InvoiceLineInline]


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
