"""Catalog (regions, specs, prices). Deployments and their lifecycle arrive with issue 3."""

from __future__ import annotations

from django.db import models


class Tier(models.TextChoices):
    BASIC = "basic", "Basic"
    PROFESSIONAL = "professional", "Professional"
    FLAGSHIP = "flagship", "Flagship"


class Provider(models.TextChoices):
    AWS = "aws", "AWS"
    AZURE = "azure", "Azure"


class Region(models.Model):
    """A cloud region with one Kubernetes cluster; loaded from ``deployments/data/catalog.json``."""

    id = models.CharField(primary_key=True, max_length=64)
    provider = models.CharField(max_length=8, choices=Provider.choices)
    code = models.CharField(max_length=64)
    name = models.CharField(max_length=100)
    tiers = models.JSONField(default=list)
    sites = models.JSONField(default=list)
    active = models.BooleanField(default=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"


class Spec(models.Model):
    """A deployment size: what it can carry and what it costs; loaded from the catalog file."""

    id = models.CharField(primary_key=True, max_length=64)
    tier = models.CharField(max_length=16, choices=Tier.choices)
    name = models.CharField(max_length=100)
    max_connections = models.PositiveIntegerField()
    max_messages_per_second = models.PositiveIntegerField()
    replicas = models.PositiveSmallIntegerField()
    cpu_millicores = models.PositiveIntegerField()
    memory_mib = models.PositiveIntegerField()
    active = models.BooleanField(default=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"


class SpecPrice(models.Model):
    """A spec's prices in one currency. Money is Decimal, in the currency's major unit."""

    spec = models.ForeignKey(Spec, on_delete=models.CASCADE, related_name="prices")
    currency = models.CharField(max_length=3)
    hourly = models.DecimalField(max_digits=12, decimal_places=4)
    annual = models.DecimalField(max_digits=14, decimal_places=2)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["spec", "currency"], name="one_price_per_spec_currency")]

    def __str__(self) -> str:
        return f"{self.spec_id} {self.currency} {self.hourly}/h"
