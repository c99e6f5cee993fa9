"""Writes of the alerts app: channels, rules, incidents, notification deliveries, metric retention.

Keyword-only, typed, atomic; every customer-visible write is audited. Deliveries are recorded first and
sent in batches by a sender run started on commit and by the beat.

One module per concern, imported directly: ``channels``, ``notifications`` (deliveries recorded and re-driven,
and ``alerts_notify``, the entry point for incidents), ``sending`` (claims, the batch sender, outcomes),
``rules``, ``defaults`` (what every new project starts with),
``failing_channels``, ``retention``, and ``validation`` (the detail their field errors share). Other apps use
``alerts.facade``.
"""
