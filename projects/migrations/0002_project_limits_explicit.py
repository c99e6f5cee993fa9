"""Project limits are stored, not inferred from the project rows (issue 11, item 2).

Until now an empty project set meant "every project", so a member, key or invitation whose last project
was deleted silently became organization-wide. Every row that has projects today is limited; a row with
none stays unlimited, which is what it means today (a row that already lost its last project cannot be
told apart from one that never had any; the audit log's project.delete events name the projects).
"""

from django.db import migrations, models


def mark_limited(apps, schema_editor):
    for model_name in ("Membership", "Invitation", "ApiKey"):
        model = apps.get_model("projects", model_name)
        model.objects.filter(projects__isnull=False).update(limited_to_projects=True)


class Migration(migrations.Migration):

    dependencies = [
        ("projects", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="membership",
            name="limited_to_projects",
            field=models.BooleanField(default=False,
                                      help_text="Limited to the listed projects (none left: no project at all)."),
        ),
        migrations.AddField(
            model_name="invitation",
            name="limited_to_projects",
            field=models.BooleanField(default=False,
                                      help_text="Limited to the listed projects (none left: no project at all)."),
        ),
        migrations.AddField(
            model_name="apikey",
            name="limited_to_projects",
            field=models.BooleanField(default=False,
                                      help_text="Limited to the listed projects (none left: no project at all)."),
        ),
        migrations.RunPython(mark_limited, migrations.RunPython.noop),
    ]
