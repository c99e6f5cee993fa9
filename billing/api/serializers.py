"""Billing API serializers: input ones check shape, output ones render. Money is a decimal string + currency."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from billing.models import BillingAccount, Invoice, InvoiceLine, Subscription
from controlplane.api.serializers import InputSerializer


class CardOut(serializers.Serializer):
    brand = serializers.CharField(source="card_brand")
    last4 = serializers.CharField(source="card_last4")
    exp_month = serializers.IntegerField(source="card_exp_month", allow_null=True)
    exp_year = serializers.IntegerField(source="card_exp_year", allow_null=True)


class BillingAccountOut(serializers.ModelSerializer):
    site = serializers.CharField(source="organization.site", read_only=True)
    currency = serializers.CharField(source="organization.currency", read_only=True)
    card = serializers.SerializerMethodField(help_text="The default card (null when none is on file).")
    deployments_stop_on = serializers.SerializerMethodField(
        help_text="While a payment has failed: when running deployments will be stopped if it stays unpaid.")

    class Meta:
        model = BillingAccount
        fields = ["legal_name", "address", "country", "vat_number", "vat_status", "tax_exempt", "site", "currency",
                  "card", "payment_failed_at", "deployments_stop_on", "suspended_at", "updated_at"]
        read_only_fields = fields

    @extend_schema_field(CardOut(allow_null=True))
    def get_card(self, account: BillingAccount) -> dict | None:
        return CardOut(account).data if account.has_card else None

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_deployments_stop_on(self, account: BillingAccount):
        from billing.selectors import dunning_stop_date

        moment = dunning_stop_date(account)
        return serializers.DateTimeField().to_representation(moment) if moment else None


class PaymentMethodSetupOut(serializers.Serializer):
    client_secret = serializers.CharField(help_text="Of a Stripe SetupIntent; confirm it with Stripe.js.")
    publishable_key = serializers.CharField(help_text="For Stripe.js.")
    setup_intent = serializers.CharField(help_text="The SetupIntent id, for /billing/payment-method/confirm.")


class PaymentMethodConfirmIn(InputSerializer):
    setup_intent = serializers.RegexField(r"^seti_[A-Za-z0-9_]{1,250}$", max_length=255)


class WebhookAckOut(serializers.Serializer):
    received = serializers.BooleanField()
    duplicate = serializers.BooleanField(help_text="The event had already been handled.")


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
                  "issued_at", "paid_at", "payment_attempts", "next_payment_attempt_at"]
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
    seconds = serializers.IntegerField()
    hourly_price = serializers.DecimalField(max_digits=12, decimal_places=4)
    amount = serializers.DecimalField(max_digits=14, decimal_places=2)


class UsageDeploymentOut(serializers.Serializer):
    deployment = serializers.CharField()
    seconds = serializers.IntegerField()
    hours = serializers.DecimalField(max_digits=14, decimal_places=4)
    amount = serializers.DecimalField(max_digits=14, decimal_places=2)
    specs = UsageSpecOut(many=True)


class UsageOut(serializers.Serializer):
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    currency = serializers.CharField()
    deployments = UsageDeploymentOut(many=True)
    current_month_estimate = serializers.DecimalField(
        max_digits=14, decimal_places=2,
        help_text="Metered hourly usage of the current month plus annual charges not invoiced yet, before VAT.")
