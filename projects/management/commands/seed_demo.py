"""Seed the embedded default: a demo organization with an owner and a project, and an operator."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from projects import demo
from projects.demo import DEMO_EMAIL, DEMO_PASSWORD, OPS_EMAIL
from projects.models import Membership, SsoConnection, SsoDomain, User
from projects.services.organizations import signup
from projects.services.sso_settings import token_hash


class Command(BaseCommand):
    help = "Create the demo organization and operator for `make run` (idempotent; refused in production)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--sso-issuer", default="",
                            help="The local OpenID Provider of `make run`: the demo organization's SSO goes there.")

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
        if options["sso_issuer"]:
            self._seed_sso(options["sso_issuer"])

    def _seed_sso(self, issuer: str) -> None:
        """The demo organization's IdP and verified domain (written directly: the domain's mailbox is fictional)."""
        organization = Membership.objects.get(user__email=DEMO_EMAIL).organization
        SsoDomain.objects.get_or_create(
            domain=demo.SSO_DOMAIN, defaults={"organization": organization, "token_hash": token_hash(demo.SSO_DOMAIN),
                                              "verified_at": timezone.now(), "verified_by": "email"})
        SsoConnection.objects.update_or_create(organization=organization, defaults={
            "issuer": issuer, "client_id": demo.SSO_CLIENT_ID, "client_secret": demo.SSO_CLIENT_SECRET,
            "group_mappings": demo.SSO_GROUP_MAPPINGS})
        self.stdout.write(f"demo SSO at {issuer}")
