"""Writes of the alerts app: channels, rules, incidents, notification deliveries, metric retention.

Keyword-only, typed, atomic; every customer-visible write is audited. Deliveries are recorded first and
sent by Celery tasks enqueued on commit.

One module per concern, imported directly: ``channels``, ``notifications`` (the delivery engine and
``alerts_notify``, its entry point for incidents), ``rules``, ``defaults`` (what every new project starts with),
``failing_channels``, ``retention``, and ``validation`` (the detail their field errors share). Other apps use
``alerts.facade``.
"""
