"""The operators' fleet pages: the top layer, above billing. It only composes what the apps below publish
(``deployments.facade``, ``alerts.facade``, ``billing.facade``, ``controlplane``'s selectors and task records);
every page is staff-only, mounted under ``/ops/`` in front of the admin site by ``controlplane/urls.py``."""
