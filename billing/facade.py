"""The public door of ``billing``, the top layer: deliberately empty.

No app imports ``billing``; the apps below learn what billing knows through their own hooks, which billing
answers (``billing/receivers.py``, registered in ``BillingConfig.ready``): today ``alerts.hooks``'
``organization_payment_failures`` for the ``payment_failed`` alert condition. Only the composition roots
(``controlplane``'s URL trees, settings, Celery) name billing's modules. A future app above billing would
import what it needs from here, re-exported from ``billing.services``/``billing.selectors`` with a comment
per name group, never those modules themselves.
"""

from __future__ import annotations

from billing.selectors import invoice_status_counts, metering_lag_seconds

# --- the fleet, for the ops overview (``ops``, the one app above billing; system reads) -------------------------
# ``invoice_status_counts()``: invoices per status over every organization.
# ``metering_lag_seconds(*, now)``: seconds since metering last finished (None: never recorded; ``/metrics``).

__all__: list[str] = ["invoice_status_counts", "metering_lag_seconds"]
