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

    ``vat_status`` is ``unchecked`` when the number has a valid format and check digit; a VIES check
    (``billing.vies``) sets ``valid`` or ``invalid``, and only ``valid`` numbers get the EU B2B reverse charge.
    The ``vat_check*`` fields record the last VIES answer for the current number (reset when it changes).
    """

    id = PrefixedIdField(prefix="bac")
    organization = models.OneToOneField("projects.Organization", on_delete=models.PROTECT,
                                        related_name="billing_account")
    legal_name = models.CharField(max_length=200, blank=True)
    address = models.TextField(max_length=1000, blank=True)
    country = models.CharField(max_length=2, blank=True)
    vat_number = models.CharField(max_length=20, blank=True)
    vat_status = models.CharField(max_length=10, choices=VatStatus.choices, default=VatStatus.UNCHECKED)
    vat_checked_at = models.DateTimeField(null=True, blank=True, help_text="when VIES last answered valid/invalid")
    vat_consultation_number = models.CharField(max_length=64, blank=True,
                                               help_text="VIES requestIdentifier: proof of the check for audits")
    vat_registered_name = models.CharField(max_length=300, blank=True, help_text="the trader's name per VIES")
    vat_check_error = models.CharField(max_length=300, blank=True, help_text="why the last check got no answer")
    vat_check_attempted_at = models.DateTimeField(null=True, blank=True, help_text="the last call to VIES")
    # Set by operators only (never through the API).
    tax_exempt = models.BooleanField(default=False)
    # Stripe: the customer is created lazily (idempotency key ``customer-<id>``); the card is shown, never
    # stored beyond what Stripe's dashboard shows too (brand, last 4 digits, expiry).
    stripe_customer_id = models.CharField(max_length=255, blank=True)
    stripe_payment_method_id = models.CharField(max_length=255, blank=True)
    card_brand = models.CharField(max_length=20, blank=True)
    card_last4 = models.CharField(max_length=4, blank=True)
    card_exp_month = models.PositiveSmallIntegerField(null=True, blank=True)
    card_exp_year = models.PositiveSmallIntegerField(null=True, blank=True)
    # The Stripe `created` time of the setup that chose the card: an older setup event arriving late
    # must not replace a newer card.
    card_set_at = models.DateTimeField(null=True, blank=True)
    # Dunning. Set when a payment fails, cleared when no failed unpaid invoice is left.
    payment_failed_at = models.DateTimeField(null=True, blank=True)
    dunning_warned_at = models.DateTimeField(null=True, blank=True)
    suspended_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["stripe_customer_id"],
                                               condition=~models.Q(stripe_customer_id=""),
                                               name="one_account_per_stripe_customer")]

    def __str__(self) -> str:
        return f"Billing account of {self.organization_id}"

    @property
    def has_card(self) -> bool:
        return bool(self.stripe_payment_method_id)


class UsageRate(models.TextChoices):
    RUNNING = "running"  # running or scaling: the spec's hourly price
    STOPPED = "stopped"  # stopped: the spec's small storage price


class UsageRecord(models.Model):
    """Seconds a deployment spent in one hour at one spec and rate (a scale or a stop splits the hour).

    ``hourly_price`` is the per-hour price of ``rate``: the hourly price when running, the stopped (storage)
    price when stopped.
    """

    # No index of their own on the foreign keys (each would cost two, with the ``varchar_pattern_ops`` twin,
    # on every one of millions of inserted rows): (organization, hour_start) and the unique key, which leads
    # with the deployment, serve every read by organization or deployment; specs are deactivated, never
    # deleted, so nothing looks usage up by spec.
    organization = models.ForeignKey("projects.Organization", on_delete=models.PROTECT, related_name="+",
                                     db_index=False)
    deployment = models.ForeignKey("deployments.Deployment", on_delete=models.PROTECT, related_name="+",
                                   db_index=False)
    hour_start = models.DateTimeField()
    spec = models.ForeignKey("deployments.Spec", on_delete=models.PROTECT, related_name="+", db_index=False)
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
    # Collection (Stripe). Our invoice stays the source of truth; each charge attempt is a Payment.
    paid_at = models.DateTimeField(null=True, blank=True)
    payment_attempts = models.PositiveSmallIntegerField(default=0)
    payment_failed_at = models.DateTimeField(null=True, blank=True, help_text="last failed attempt, while unpaid")
    next_payment_attempt_at = models.DateTimeField(null=True, blank=True)
    last_payment_error = models.CharField(max_length=300, blank=True)

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


class PaymentStatus(models.TextChoices):
    # Recorded before Stripe is called: a crash or an outage leaves it pending, and the retry sends the
    # same idempotency key, so Stripe answers with the charge it may already have made.
    PENDING = "pending"
    PROCESSING = "processing"
    REQUIRES_ACTION = "requires_action"  # not used for off-session charges (recorded as failed)
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Payment(models.Model):
    """One attempt to charge an invoice off-session (a Stripe PaymentIntent). At most one per attempt number."""

    id = PrefixedIdField(prefix="pay")
    organization = models.ForeignKey("projects.Organization", on_delete=models.PROTECT, related_name="+")
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="payments")
    attempt = models.PositiveSmallIntegerField()
    idempotency_key = models.CharField(max_length=100, unique=True)
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=16, choices=PaymentStatus.choices, default=PaymentStatus.PENDING)
    stripe_payment_intent_id = models.CharField(max_length=255, blank=True)
    # Fixed when the attempt is recorded: a retry with the same idempotency key must send the same request.
    stripe_payment_method_id = models.CharField(max_length=255, blank=True)
    error_code = models.CharField(max_length=100, blank=True)
    error_message = models.CharField(max_length=300, blank=True)
    # Stripe's `created` of the last event applied: an older event arriving later changes nothing.
    stripe_event_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["invoice", "attempt"]
        constraints = [
            models.UniqueConstraint(fields=["invoice", "attempt"], name="one_payment_per_invoice_attempt"),
            models.UniqueConstraint(fields=["stripe_payment_intent_id"],
                                    condition=~models.Q(stripe_payment_intent_id=""),
                                    name="one_payment_per_payment_intent"),
        ]

    def __str__(self) -> str:
        return f"{self.invoice_id} attempt {self.attempt} ({self.status})"


class StripeEvent(models.Model):
    """Every verified Stripe webhook event, stored once by its Stripe id; ``processed_at`` marks it handled."""

    stripe_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100)
    created = models.DateTimeField(help_text="Stripe's creation time of the event")
    livemode = models.BooleanField(default=False)
    payload = models.JSONField()
    received_at = models.DateTimeField(default=timezone.now, editable=False)
    deliveries = models.PositiveIntegerField(default=1)
    processed_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-received_at"]
        indexes = [models.Index(fields=["type", "created"])]

    def __str__(self) -> str:
        return f"{self.stripe_id} {self.type}"


class Budget(models.Model):
    """A monthly spending limit for the whole organization (``project`` null) or one project, in the
    organization's currency. Crossing 50, 80 and 100% of it notifies ``channels`` (or, with none, the
    organization's owners and billing members by email) once per month each."""

    id = PrefixedIdField(prefix="bud")
    organization = models.ForeignKey("projects.Organization", on_delete=models.CASCADE, related_name="+")
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, null=True, blank=True,
                                related_name="+")
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    channels = models.ManyToManyField("alerts.AlertChannel", blank=True, related_name="+")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization"], condition=models.Q(project__isnull=True),
                                    name="one_budget_per_organization"),
            models.UniqueConstraint(fields=["project"], condition=models.Q(project__isnull=False),
                                    name="one_budget_per_project"),
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="budget_amount_positive"),
        ]
        indexes = [models.Index(fields=["organization", "created_at"])]

    def __str__(self) -> str:
        return f"Budget {self.amount} of {self.project_id or self.organization_id}"


class BudgetCrossing(models.Model):
    """A threshold (50, 80, 100 %) of a budget reached in a month. The unique constraint is what makes each
    threshold notify once per month, however often or concurrently the evaluation runs."""

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="crossings")
    month = models.DateField(help_text="the first day of the month")
    threshold = models.PositiveSmallIntegerField()
    spent = models.DecimalField(max_digits=14, decimal_places=2, help_text="the spend when it was crossed")
    amount = models.DecimalField(max_digits=14, decimal_places=2, help_text="the budget then")
    notified = models.BooleanField(default=False, help_text="false when a higher threshold crossed at the same "
                                                            "time was notified instead")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["budget", "month", "threshold"],
                                               name="one_crossing_per_budget_month_threshold")]

    def __str__(self) -> str:
        return f"{self.budget_id} {self.month:%Y-%m} {self.threshold}%"
