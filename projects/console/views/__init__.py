"""Console pages. Thin: a selector to read, a service to write, a template to render. One module per concern:
``auth`` (session and account), ``projects``, ``members`` (and invitations), ``api_keys``, ``audit`` (the audit
log and the outbox); ``projects.console.urls`` maps them.

Every page derives from ``projects.console.base``: public pages (login, signup, the invitation link) from
``ConsoleView``, everything inside an organization from ``OrganizationConsoleView``.
"""
