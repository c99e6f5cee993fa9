"""Writes for deployments and the catalog."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from django.db import transaction

from deployments.models import Region, Spec, SpecPrice

CATALOG_FILE = Path(__file__).resolve().parent / "data" / "catalog.json"


@transaction.atomic
def catalog_sync(*, path: Path = CATALOG_FILE) -> dict[str, int]:
    """Upsert regions, specs and prices from the data file; entries no longer listed are deactivated.

    Idempotent: running it twice changes nothing the second time.
    """
    data = json.loads(Path(path).read_text())
    region_ids, spec_ids = [], []
    for entry in data["regions"]:
        Region.objects.update_or_create(
            id=entry["id"],
            defaults={k: entry[k] for k in ("provider", "code", "name", "tiers", "sites")} | {"active": True},
        )
        region_ids.append(entry["id"])
    for entry in data["specs"]:
        spec, _ = Spec.objects.update_or_create(
            id=entry["id"],
            defaults={
                k: entry[k]
                for k in ("tier", "name", "max_connections", "max_messages_per_second", "replicas",
                          "cpu_millicores", "memory_mib")
            }
            | {"active": True},
        )
        for price in entry["prices"]:
            SpecPrice.objects.update_or_create(
                spec=spec,
                currency=price["currency"],
                defaults={"hourly": Decimal(price["hourly"]), "annual": Decimal(price["annual"])},
            )
        spec_ids.append(entry["id"])
    Region.objects.exclude(id__in=region_ids).update(active=False)
    Spec.objects.exclude(id__in=spec_ids).update(active=False)
    return {"regions": len(region_ids), "specs": len(spec_ids)}
