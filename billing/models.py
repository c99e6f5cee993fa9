"""Billing: accounts, hourly usage, annual subscriptions and monthly invoices. Money is ``Decimal``."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from controlplane.ids import PrefixedIdField


class VatStatus(models.TextChoices):
    VALID = "valid"
    INVALID = "invalid"
    UNCHECKED = "unchecked"


class BillingAccount(models.Model):
    """Who is invoiced for an organization. Created lazily; ``site``/``currency`` come from the organization.

    ``vat_status`` is ``unchecked`` when the number has a valid format and check digit; only a VIES check
    (not wired yet) sets ``valid``, and only ``valid`` numbers get the EU B2B reverse charge.
    """

    id = PrefixedIdField(prefix="bac")
    organization = models.OneToOneField("projects.Organization", on_delete=models.PROTECT,
                                        related_name="billing_account")
    legal_name = models.CharField(max_length=200, blank=True)
    address = models.TextField(max_length=1000, blank=True)
    country = models.CharField(max_length=2, blank=True)
    vat_number = models.CharField(max_length=20, blank=True)
    vat_status = models.CharField(max_length=10, choices=VatStatus.choices, default=VatStatus.UNCHECKED)
    # Set by operators only (never through the API).
    tax_exempt = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Billing account of {self.organization_id}"


class UsageRate(models.TextChoices):
    RUNNING = "running"  # running or scaling: the spec's hourly price
    STOPPED = "stopped"  # stopped: the spec's small storage price


class UsageRecord(models.Model):
    """Seconds a deployment spent in one hour at one spec and rate (a scale or a stop splits the hour).

    ``hourly_price`` is the per-hour price of ``rate``: the hourly price when running, the stopped (storage)
    price when stopped.
    """

    organization = models.ForeignKey("projects.Organization", on_delete=models.PROTECT, related_name="+")
    deployment = models.ForeignKey("deployments.Deployment", on_delete=models.PROTECT, related_name="+")
    hour_start = models.DateTimeField()
    spec = models.ForeignKey("deployments.Spec", on_delete=models.PROTECT, related_name="+")
    rate = models.CharField(max_length=8, choices=UsageRate.choices, default=UsageRate.RUNNING)
    seconds = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    hourly_price = models.DecimalField(max_digits=12, decimal_places=4)
    metered_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["deployment", "hour_start", "spec", "rate"],
                                               name="one_usage_per_deployment_hour_spec_rate")]
        # hour_start alone: metering compares a range of hours with what it wrote before, for everyone.
        indexes = [models.Index(fields=["organization", "hour_start"]), models.Index(fields=["hour_start"])]

    def __str__(self) -> str:
        return f"{self.deployment_id} {self.hour_start:%Y-%m-%dT%H} {self.spec_id} {self.rate} {self.seconds}s"


class SubscriptionMode(models.TextChoices):
    HOURLY = "hourly"
    ANNUAL = "annual"


class Subscription(models.Model):
    """How a deployment is paid: by the hour (default) or a prepaid 12-month term."""

    organization = models.ForeignKey("projects.Organization", on_delete=models.PROTECT, related_name="+")
    deployment = models.OneToOneField("deployments.Deployment", on_delete=models.PROTECT,
                                      related_name="subscription")
    mode = models.CharField(max_length=8, choices=SubscriptionMode.choices, default=SubscriptionMode.HOURLY)
    term_start = models.DateTimeField(null=True, blank=True)
    term_end = models.DateTimeField(null=True, blank=True)
    annual_price = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    renews = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.mode} subscription of {self.deployment_id}"


class ChargeKind(models.TextChoices):
    TERM = "term"  # a 12-month term, charged up front
    PRORATION = "proration"  # a scale inside a term: the prorated difference (negative for a downgrade)
    CARRIED_CREDIT = "carried_credit"  # credit an invoice could not use up, brought to the next one (negative)


class AnnualCharge(models.Model):
    """An annual-plan charge, picked up by the next invoice (``invoice`` set then).

    ``term``: the term's price, one per subscription and term start. ``proration``: one per scale event
    (``source_event``, the event that put the new spec in force), so a rerun never charges a scale twice.
    ``carried_credit``: what was left of credits when ``source_invoice`` was issued (invoices never go
    negative). ``term_start``/``term_end`` are those of the term the charge belongs to.
    """

    organization = models.ForeignKey("projects.Organization", on_delete=models.PROTECT, related_name="+")
    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, related_name="charges")
    deployment = models.ForeignKey("deployments.Deployment", on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=16, choices=ChargeKind.choices, default=ChargeKind.TERM)
    spec = models.ForeignKey("deployments.Spec", on_delete=models.PROTECT, related_name="+",
                             help_text="the spec paid for from this charge on (proration: the new spec)")
    # Proration only: the spec before the scale.
    previous_spec = models.ForeignKey("deployments.Spec", on_delete=models.PROTECT, null=True, blank=True,
                                      related_name="+")
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    currency = models.CharField(max_length=3)
    term_start = models.DateTimeField()
    term_end = models.DateTimeField()
    # Proration only: when the new spec came into force (the prorated part is from here to ``term_end``).
    effective_at = models.DateTimeField(null=True, blank=True)
    source_event = models.OneToOneField("deployments.DeploymentEvent", on_delete=models.PROTECT, null=True,
                                        blank=True, related_name="+")
    source_invoice = models.OneToOneField("Invoice", on_delete=models.PROTECT, null=True, blank=True,
                                          related_name="+")
    invoice = models.ForeignKey("Invoice", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["subscription", "term_start"], condition=models.Q(kind="term"),
                                    name="one_term_charge_per_term"),
            models.CheckConstraint(condition=~models.Q(kind="proration") | models.Q(source_event__isnull=False),
                                   name="proration_has_source_event"),
        ]

    def __str__(self) -> str:
        return f"{self.deployment_id} annual {self.amount} {self.currency}"


class InvoiceStatus(models.TextChoices):
    DRAFT = "draft"
    OPEN = "open"
    PAID = "paid"
    VOID = "void"
    UNCOLLECTIBLE = "uncollectible"


class InvoiceCounter(models.Model):
    """The last invoice number issued per site and year; locked while numbering, so numbers have no gaps."""

    site = models.CharField(max_length=10)
    year = models.PositiveSmallIntegerField()
    last_number = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["site", "year"], name="one_counter_per_site_year")]

    def __str__(self) -> str:
        return f"{self.site} {self.year}: {self.last_number}"


class Invoice(models.Model):
    """One month of one billing account. Totals are the sum of lines (each rounded) plus VAT."""

    id = PrefixedIdField(prefix="inv")
    organization = models.ForeignKey("projects.Organization", on_delete=models.PROTECT, related_name="+")
    account = models.ForeignKey(BillingAccount, on_delete=models.PROTECT, related_name="invoices")
    number = models.CharField(max_length=40, unique=True)
    period_start = models.DateField()
    period_end = models.DateField(help_text="exclusive: the first day of the next month")
    currency = models.CharField(max_length=3)
    subtotal = models.DecimalField(max_digits=14, decimal_places=2)
    vat_rate = models.DecimalField(max_digits=5, decimal_places=2)
    vat_amount = models.DecimalField(max_digits=14, decimal_places=2)
    vat_note = models.CharField(max_length=300, blank=True)
    total = models.DecimalField(max_digits=14, decimal_places=2)
    status = models.CharField(max_length=16, choices=InvoiceStatus.choices, default=InvoiceStatus.OPEN)
    # The customer's details as they were when the invoice was issued.
    legal_name = models.CharField(max_length=200, blank=True)
    address = models.TextField(blank=True)
    country = models.CharField(max_length=2, blank=True)
    vat_number = models.CharField(max_length=20, blank=True)
    issued_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-period_start", "-created_at"]
        constraints = [models.UniqueConstraint(fields=["account", "period_start"], name="one_invoice_per_period")]

    def __str__(self) -> str:
        return self.number


class InvoiceLine(models.Model):
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveSmallIntegerField()
    description = models.CharField(max_length=300)
    quantity = models.DecimalField(max_digits=14, decimal_places=4)
    unit = models.CharField(max_length=10)
    unit_price = models.DecimalField(max_digits=14, decimal_places=4)
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    deployment = models.ForeignKey("deployments.Deployment", on_delete=models.PROTECT, null=True, blank=True,
                                   related_name="+")

    class Meta:
        ordering = ["position"]

    def __str__(self) -> str:
        return self.description
