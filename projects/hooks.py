"""Events of a project's life that the apps above ``projects`` react to (``controlplane.hooks``).

``projects`` declares them and never imports the apps that listen: ``alerts`` and ``deployments`` register
their receivers in their ``AppConfig.ready``. Every hook runs inside the transaction of the change it
announces, so a receiver that raises undoes the whole change.
"""

from __future__ import annotations

from controlplane.hooks import Hook

project_created = Hook("projects.project_created", """A project was just saved (``project_create``, and the first
project of a ``signup``), inside its transaction. Keyword argument: ``project``. A receiver adds what every
new project starts with and returns a dict of what it added, merged into the changes of the project's
``project.create`` audit event (which covers it), or None.""")

project_delete_blockers = Hook("projects.project_delete_blockers", """Asked before a project is deleted, with its
row locked. Keyword argument: ``project``. A receiver returns why the project cannot be deleted yet (a
sentence for the person who asked, e.g. its deployments are still there), or None; any answer refuses the
deletion with a 409 carrying the first reason.""")

project_deleting = Hook("projects.project_deleting", """A project is about to be deleted: it is locked, nothing
refused, and its audit event is not yet written. Keyword argument: ``project``. A receiver saves what must
outlive the project (alerts moves the organization-wide rules stored on it) and returns a dict of what it
did, merged into the changes of the ``project.delete`` audit event, or None.""")
