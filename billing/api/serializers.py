"""Billing API serializers: input ones check shape, output ones render. Money is a decimal string + currency."""

from __future__ import annotations

from rest_framework import serializers

from billing.models import BillingAccount, Invoice, InvoiceLine, Subscription
from controlplane.api.serializers import InputSerializer


class BillingAccountOut(serializers.ModelSerializer):
    site = serializers.CharField(source="organization.site", read_only=True)
    currency = serializers.CharField(source="organization.currency", read_only=True)

    class Meta:
        model = BillingAccount
        fields = ["legal_name", "address", "country", "vat_number", "vat_status", "tax_exempt", "site", "currency",
                  "updated_at"]
        read_only_fields = fields


class BillingAccountPatchIn(InputSerializer):
    legal_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    address = serializers.CharField(max_length=1000, required=False, allow_blank=True)
    country = serializers.CharField(max_length=2, required=False, allow_blank=True,
                                    help_text="ISO 3166-1 alpha-2 (GR for Greece, GB for the UK and Northern "
                                              "Ireland)")
    vat_number = serializers.CharField(max_length=20, required=False, allow_blank=True,
                                       help_text="Checked for format and check digit (EL prefix for Greece, XI for "
                                                 "Northern Ireland); `vat_status` stays `unchecked` until VIES "
                                                 "confirms it.")


class InvoiceLineOut(serializers.ModelSerializer):
    class Meta:
        model = InvoiceLine
        fields = ["description", "quantity", "unit", "unit_price", "amount", "deployment"]
        read_only_fields = fields


class InvoiceOut(serializers.ModelSerializer):
    lines = InvoiceLineOut(many=True, read_only=True)

    class Meta:
        model = Invoice
        fields = ["id", "number", "period_start", "period_end", "currency", "lines", "subtotal", "vat_rate",
                  "vat_amount", "vat_note", "total", "status", "legal_name", "address", "country", "vat_number",
                  "issued_at"]
        read_only_fields = fields


class SubscriptionOut(serializers.ModelSerializer):
    deployment = serializers.CharField(source="deployment_id", read_only=True)

    class Meta:
        model = Subscription
        fields = ["deployment", "mode", "term_start", "term_end", "annual_price", "currency", "renews"]
        read_only_fields = fields


class SwitchToAnnualIn(InputSerializer):
    renew = serializers.BooleanField(default=False, help_text="Renew automatically at the end of the term.")


class UsageQueryIn(InputSerializer):
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)


class UsageSpecOut(serializers.Serializer):
    spec = serializers.CharField()
    rate = serializers.ChoiceField(choices=["running", "stopped"],
                                   help_text="`running` (running or scaling, at the hourly price) or `stopped` "
                                             "(at the spec's stopped storage price).")
    seconds = serializers.IntegerField()
    hourly_price = serializers.DecimalField(max_digits=12, decimal_places=4,
                                            help_text="The per-hour price of this rate.")
    amount = serializers.DecimalField(max_digits=14, decimal_places=2)


class UsageDeploymentOut(serializers.Serializer):
    deployment = serializers.CharField()
    seconds = serializers.IntegerField(help_text="Running (billable) seconds.")
    hours = serializers.DecimalField(max_digits=14, decimal_places=4)
    stopped_seconds = serializers.IntegerField(help_text="Seconds stopped, at the stopped (storage) rate.")
    stopped_hours = serializers.DecimalField(max_digits=14, decimal_places=4)
    amount = serializers.DecimalField(max_digits=14, decimal_places=2)
    specs = UsageSpecOut(many=True)


class UsageOut(serializers.Serializer):
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    currency = serializers.CharField()
    deployments = UsageDeploymentOut(many=True)
    current_month_estimate = serializers.DecimalField(
        max_digits=14, decimal_places=2,
        help_text="Metered usage (running and stopped) of the current month plus annual charges and credits "
                  "not invoiced yet, before VAT; never below zero.")
