"""Questions deployments asks the apps above it (``controlplane.hooks``).

``deployments`` declares them and never imports the apps that answer: ``billing`` registers its receiver in
``BillingConfig.ready``.
"""

from __future__ import annotations

from controlplane.hooks import Hook

start_blockers = Hook("deployments.start_blockers", """Asked before anything that would run brokers for an
organization: creating a deployment, starting a stopped one, retrying a failed provisioning or start. Keyword
argument: ``organization``. A receiver returns why the organization may not run deployments now (a sentence for
the person who asked, e.g. billing: an invoice is unpaid past the grace period), or None; any answer refuses the
request with a 409 carrying the first reason.""")

planned_maintenance = Hook("deployments.planned_maintenance", """Told when platform-initiated maintenance of a
deployment (``PlannedMaintenance``) reaches a phase people hear about: ``announced`` (ahead of its window, or
again when it moved), ``done``, ``failed`` or ``cancelled`` (after an announcement). Keyword arguments:
``planned`` and ``phase``. Sent inside the transaction that records the phase; alerts emails the organization's
owners and admins and sends a notice to its alert channels.""")
