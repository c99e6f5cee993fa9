"""Logins seeded for the embedded default (`make run`). Never used outside it (seed_demo refuses)."""

DEMO_EMAIL = "demo@mqcloud.localhost"
OPS_EMAIL = "ops@mqcloud.localhost"
DEMO_PASSWORD = "mqcloud-demo-2026"

# Single sign-on on `make run` (issue 17): the local OpenID Provider (deploy/oidc-provider/idp.mjs) for the demo
# organization, with a verified domain of its own. Its login page takes these addresses (any password).
SSO_DOMAIN = "sso.mqcloud.localhost"
SSO_CLIENT_ID = "mqcloud-demo"
SSO_CLIENT_SECRET = "mqcloud-demo-idp-secret"  # noqa: S105 - a loopback demo IdP's client, never a real one
SSO_USERS = {
    f"alice@{SSO_DOMAIN}": {"name": "Alice (IdP group mq-admins)", "groups": ["mq-admins"]},
    f"dave@{SSO_DOMAIN}": {"name": "Dave (IdP group mq-devs)", "groups": ["mq-devs"]},
}
SSO_GROUP_MAPPINGS = [{"group": "mq-admins", "role": "admin", "projects": []},
                      {"group": "mq-devs", "role": "developer", "projects": []}]
