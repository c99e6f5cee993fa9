"""Seed the embedded default: a demo organization with an owner and a project, and an operator."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from projects.demo import DEMO_EMAIL, DEMO_PASSWORD, OPS_EMAIL
from projects.models import User
from projects.services.organizations import signup


class Command(BaseCommand):
    help = "Create the demo organization and operator for `make run` (idempotent; refused in production)."

    def handle(self, *args, **options) -> None:
        if settings.PRODUCTION:
            raise CommandError("seed_demo is for the embedded default only.")
        if not User.objects.filter(email=DEMO_EMAIL).exists():
            organization, _, _, _ = signup(
                email=DEMO_EMAIL, password=DEMO_PASSWORD, organization_name="Demo Org", site="global",
                country="DE", name="Demo Owner", with_api_key=False,  # nobody would see its secret
            )
            self.stdout.write(f"seeded organization {organization.id}")
        if not User.objects.filter(email=OPS_EMAIL).exists():
            User.objects.create_superuser(OPS_EMAIL, DEMO_PASSWORD, name="Operator")
            self.stdout.write("seeded operator")
