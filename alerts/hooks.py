"""What the alert evaluator asks of the apps above ``alerts`` (``controlplane.hooks``).

``alerts`` declares the hooks and never imports the apps that answer: ``billing`` registers its receiver in
its ``AppConfig.ready``. A condition nobody answers for simply never holds.
"""

from __future__ import annotations

from controlplane.hooks import Hook

organization_payment_failures = Hook("alerts.organization_payment_failures", """Asked once per evaluation pass
that has ``payment_failed`` rules, outside any transaction. Keyword argument: ``organization_ids``, the sorted
ids of the organizations those rules belong to. A receiver returns a dict of organization id → when its last
payment failed (an aware datetime), for the organizations among them whose payment has failed and is not settled
yet; the evaluator merges the answers. Each receiver should answer in a fixed number of queries (a pass's query
count does not grow with the fleet).""")
