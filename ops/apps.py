"""The ops site is Django's admin app with our own site class (``projects.ops_site.OpsAdminSite``): installed in
settings as this config instead of ``django.contrib.admin``, so ``admin.site`` everywhere is that class."""

from django.contrib.admin.apps import AdminConfig


class OpsAdminConfig(AdminConfig):
    default_site = "projects.ops_site.OpsAdminSite"
