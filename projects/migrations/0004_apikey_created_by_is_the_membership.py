from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("projects", "0003_apikey_created_by_membership"),
    ]

    operations = [
        migrations.RemoveField(model_name="apikey", name="created_by"),
        migrations.RenameField(model_name="apikey", old_name="created_by_membership", new_name="created_by"),
    ]
