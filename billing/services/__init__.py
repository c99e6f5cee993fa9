"""Every write to billing data: keyword-only, atomic, audited. Reruns of metering and invoicing are no-ops.

One module per concern, imported directly: ``accounts`` (details, VAT number format, operators), ``vat`` (VIES
checks), ``usage`` (metering), ``subscriptions`` (annual terms, proration), ``invoicing``, ``cards`` (the Stripe
customer and card), ``payments`` (collection), ``webhooks`` (Stripe events), ``dunning``, ``budgets``, and
``closing`` (what the hourly and monthly jobs run, in order). Request-side modules enqueue tasks by name
(``controlplane.queue``); none imports ``billing.tasks``.
"""
