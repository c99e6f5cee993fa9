"""API keys belong to the membership that made them; organization service keys are marked (issue 11, item 3).

Existing keys get their creator's membership: the user recorded on the key, or, for a key made with another
key (the old code recorded no user then), the maker found by following the append-only audit log's
``api_key.create`` events back to a person. Then:

- the maker is still a member: the key is theirs and from now on acts within their current rights;
- the maker is known but no longer a member: the key is revoked; this is the reported hole (a removed
  admin's key that still worked), and an audit event says why;
- no maker can be found (no audit trail, or it ends at an operator or the system): the key becomes an
  organization service key. It has no member to be capped by, and revoking it would break running scripts
  without warning; owners see it marked ``service`` in the list (and an audit event), and can revoke it.
"""

import django.db.models.deletion
from django.db import migrations, models
from django.utils import timezone

ACTOR = {"actor_type": "system", "actor_id": "", "actor_label": "migration projects.0003"}


def link_creators(apps, schema_editor):
    ApiKey = apps.get_model("projects", "ApiKey")
    Membership = apps.get_model("projects", "Membership")
    AuditEvent = apps.get_model("projects", "AuditEvent")
    keys = {key.pk: key for key in ApiKey.objects.all()}
    made_by = {event.target_id: (event.actor_type, event.actor_id)
               for event in AuditEvent.objects.filter(action="api_key.create").order_by("created_at")}

    def maker(key, seen):
        if key.created_by_id:  # the user recorded until now
            return key.created_by_id
        actor_type, actor_id = made_by.get(key.pk, ("", ""))
        if actor_type == "user":
            return actor_id
        if actor_type == "api_key" and actor_id in keys and actor_id not in seen:
            return maker(keys[actor_id], seen | {key.pk})
        return None

    now = timezone.now()
    for key in keys.values():
        user_id = maker(key, frozenset())
        audit = None
        if user_id is None:
            key.service = True
            audit = ("api_key.update", {"service": [False, True], "reason": "no known creator"})
        else:
            membership = Membership.objects.filter(organization_id=key.organization_id, user_id=user_id).first()
            if membership is not None:
                key.created_by_membership_id = membership.pk
            elif key.revoked_at is None:
                key.revoked_at = now
                audit = ("api_key.revoke", {"name": key.name, "reason": "creator left", "creator": None})
        key.save(update_fields=["service", "created_by_membership", "revoked_at"])
        if audit is not None:
            AuditEvent.objects.create(organization_id=key.organization_id, action=audit[0], target_type="apikey",
                                      target_id=key.pk, target_label=f"{key.name} (mqc_{key.prefix}…)"[:254],
                                      changes=audit[1], created_at=now, **ACTOR)


def unlink_creators(apps, schema_editor):
    ApiKey = apps.get_model("projects", "ApiKey")
    for key in ApiKey.objects.filter(created_by_membership__isnull=False).select_related("created_by_membership"):
        key.created_by_id = key.created_by_membership.user_id
        key.save(update_fields=["created_by"])


class Migration(migrations.Migration):

    dependencies = [
        ("projects", "0002_project_limits_explicit"),
    ]

    operations = [
        # Added under a temporary name, renamed in 0004 once the old user column is gone (renaming the old
        # column instead would leave its index name to clash with the new column's).
        migrations.AddField(
            model_name="apikey",
            name="created_by_membership",
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL,
                                    related_name="api_keys_created", to="projects.membership"),
        ),
        migrations.AddField(
            model_name="apikey",
            name="service",
            field=models.BooleanField(default=False, help_text="An organization key made by an owner; no creator."),
        ),
        migrations.RunPython(link_creators, unlink_creators),
        # The old column goes in 0004: PostgreSQL refuses to alter a table with deferred foreign-key checks
        # still pending from the rows written above in the same transaction.
    ]
