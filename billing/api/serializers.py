"""Billing API serializers: input ones check shape, output ones render. Money is a decimal string + currency."""

from __future__ import annotations

from decimal import Decimal

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from billing import selectors
from billing.models import BillingAccount, Budget, Invoice, InvoiceLine, Subscription
from controlplane.api.serializers import CountryCodeField, InputSerializer, PrefixedIdListField


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
        fields = ["legal_name", "address", "country", "vat_number", "vat_status", "vat_checked_at",
                  "vat_consultation_number", "vat_registered_name", "vat_check_error", "vat_check_attempted_at",
                  "tax_exempt", "site", "currency", "card", "payment_failed_at", "deployments_stop_on",
                  "suspended_at", "updated_at"]
        read_only_fields = fields
        extra_kwargs = {
            "vat_checked_at": {"help_text": "When VIES last gave a verdict on this number (null: not yet)."},
            "vat_consultation_number": {"help_text": "The VIES consultation number of that verdict: proof of the "
                                                     "check for tax audits."},
            "vat_registered_name": {"help_text": "The trader's name as VIES returned it (empty when the member "
                                                 "state does not disclose it)."},
            "vat_check_error": {"help_text": "Why the last check got no verdict (VIES or the member state "
                                             "unavailable, busy, timeout); it is retried automatically."},
            "vat_check_attempted_at": {"help_text": "The last call to VIES, verdict or not."},
        }

    @extend_schema_field(CardOut(allow_null=True))
    def get_card(self, account: BillingAccount) -> dict | None:
        return CardOut(account).data if account.has_card else None

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_deployments_stop_on(self, account: BillingAccount):
        moment = selectors.dunning_stop_date(account)
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
    country = CountryCodeField(required=False, allow_blank=True,
                               help_text="ISO 3166-1 alpha-2 (GR for Greece, GB for the UK and Northern Ireland); "
                                         "empty clears it (invoices then use the organization's country)")
    vat_number = serializers.CharField(max_length=20, required=False, allow_blank=True,
                                       help_text="Checked for format and check digit (EL prefix for Greece, XI for "
                                                 "Northern Ireland); then checked in VIES in the background: "
                                                 "`vat_status` becomes `valid` or `invalid` (GB numbers are not in "
                                                 "VIES and stay `unchecked`).")


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


class BudgetOut(serializers.ModelSerializer):
    project = serializers.CharField(source="project_id", read_only=True, allow_null=True,
                                    help_text="null: the whole organization")
    currency = serializers.CharField(source="organization.currency", read_only=True)
    channels = serializers.SerializerMethodField()
    spent = serializers.SerializerMethodField(help_text="This month's spend so far, before VAT, as invoicing counts "
                                                        "it (metered usage plus annual terms charged this month).")

    class Meta:
        model = Budget
        fields = ["id", "project", "amount", "currency", "channels", "enabled", "spent", "created_at", "updated_at"]
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_channels(self, obj: Budget) -> list[str]:
        return sorted(c.id for c in obj.channels.all())

    @extend_schema_field(serializers.DecimalField(max_digits=14, decimal_places=2))
    def get_spent(self, obj: Budget) -> str:
        spent = self.context.get("spent")  # the list's page, asked at once (``budgets_spent``)
        if spent is not None and obj.pk in spent:
            return str(spent[obj.pk])
        return str(selectors.budget_spent(budget=obj, now=self.context.get("now") or timezone.now()))


class BudgetIn(InputSerializer):
    project = serializers.RegexField(r"^prj_[a-z0-9]{1,28}$", max_length=32, required=False, allow_null=True,
                                     help_text="Omit (or null) for the whole organization; one budget per scope.")
    amount = serializers.DecimalField(max_digits=14, decimal_places=2, min_value=Decimal("0.01"),
                                      help_text="Per calendar month, in the organization's currency, before VAT.")
    channels = PrefixedIdListField(prefix="ach", required=False,
                                   help_text="Alert channels told at 50, 80 and 100%; none: the owners and billing "
                                             "members are emailed.")
    enabled = serializers.BooleanField(default=True)


class BudgetPatchIn(InputSerializer):
    amount = serializers.DecimalField(max_digits=14, decimal_places=2, min_value=Decimal("0.01"), required=False)
    channels = PrefixedIdListField(prefix="ach", required=False)
    enabled = serializers.BooleanField(required=False)
